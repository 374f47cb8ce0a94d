"""A report as a list of blocks, written out as Markdown and as one HTML file.

Why one document model: the Markdown and the HTML must say the same thing, so
both are rendered from the same blocks. A table cell may carry a tooltip and a
link (the job it came from); the HTML shows them, the Markdown keeps the text.
Images are PNG bytes: the HTML embeds them (``data:`` URIs, so the file is
self-contained and can be mailed or attached to a CI run), the Markdown links
the PNG files written beside it.
"""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union


@dataclass
class Td:
    """A table cell: text, and optionally a tooltip, a link, an anchor, a CSS class."""

    text: str
    title: str = ""
    href: str = ""
    anchor: str = ""
    cls: str = ""
    data: Dict[str, str] = field(default_factory=dict)


CellText = Union[str, Td]


@dataclass
class Block:
    kind: str                                   # h1, h2, h3, p, note, table, image
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[CellText]] = ()
    png: bytes = b""
    name: str = ""                              # image file name (Markdown)
    anchor: str = ""


class Document:
    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: List[Block] = []

    def h(self, level: int, text: str, anchor: str = "") -> None:
        self.blocks.append(Block(f"h{level}", text, anchor=anchor))

    def p(self, text: str) -> None:
        self.blocks.append(Block("p", text))

    def note(self, text: str) -> None:
        self.blocks.append(Block("note", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[CellText]]) -> None:
        self.blocks.append(Block("table", header=list(header), rows=[list(r) for r in rows]))

    def image(self, name: str, png: bytes, alt: str) -> None:
        self.blocks.append(Block("image", alt, png=png, name=name))

    # -- Markdown ---------------------------------------------------------------------------
    def markdown(self, image_dir: Optional[str] = None) -> str:
        """Markdown text; images are written as PNG files into ``image_dir``."""
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind.startswith("h"):
                out += ["#" * int(b.kind[1]) + " " + b.text, ""]
            elif b.kind in ("p", "note"):
                out += [("> " if b.kind == "note" else "") + b.text, ""]
            elif b.kind == "table":
                out += _md_table(b.header, b.rows) + [""]
            elif b.kind == "image" and image_dir is not None:
                with open(os.path.join(image_dir, b.name), "wb") as f:
                    f.write(b.png)
                out += [f"![{b.text}]({b.name})", ""]
        return "\n".join(out)

    # -- HTML -------------------------------------------------------------------------------
    def html(self) -> str:
        e = html.escape
        parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
                 "<meta name='viewport' content='width=device-width, initial-scale=1'>",
                 f"<title>{e(self.title)}</title><style>{_CSS}</style></head><body>",
                 f"<h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if b.kind.startswith("h"):
                anchor = f" id='{e(b.anchor)}'" if b.anchor else ""
                parts.append(f"<{b.kind}{anchor}>{e(b.text)}</{b.kind}>")
            elif b.kind in ("p", "note"):
                parts.append(f"<p class='{b.kind}'>{e(b.text)}</p>")
            elif b.kind == "table":
                parts.append(_html_table(b.header, b.rows))
            elif b.kind == "image":
                data = base64.b64encode(b.png).decode("ascii")
                parts.append(f"<figure><img src='data:image/png;base64,{data}' "
                             f"alt='{e(b.text)}'></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;"
    "max-width:1180px;padding:0 1em;color:#222;line-height:1.4}"
    "h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}"
    "h3{font-size:1.05em;margin-top:1.4em}"
    "p.note{color:#555;font-size:.9em;border-left:3px solid #ccc;padding-left:.6em}"
    ".scroll{overflow-x:auto;margin:.6em 0}"
    "table{border-collapse:collapse;font-size:.82em}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}"
    "th{background:#f3f3f3;position:sticky;top:0}"
    "td:first-child,th:first-child,td.l{text-align:left}"
    "td.err{color:#b02a2a}td.slow{background:#fbe3e3}td.fast{background:#e3f3e6}"
    "td.reg{background:#f6c9c9;font-weight:600}td.imp{background:#cfeed6}"
    "td.wrap{white-space:normal;text-align:left;min-width:12em;max-width:36em}"
    "a{color:#2a5db0;text-decoration:none}a:hover{text-decoration:underline}"
    "tr:target{background:#fff6cc}"
    "figure{margin:.8em 0}img{max-width:100%;height:auto;border:1px solid #eee}")


def _text(c: CellText) -> str:
    return c.text if isinstance(c, Td) else str(c)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[CellText]]) -> List[str]:
    esc = [[_text(c).replace("|", "\\|").replace("\n", " ") for c in r]
           for r in [list(header), *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return lines


def _html_table(header: Sequence[str], rows: Sequence[Sequence[CellText]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = []
    for r in rows:
        anchor = next((c.anchor for c in r if isinstance(c, Td) and c.anchor), "")
        tr = f"<tr id='{e(anchor)}'>" if anchor else "<tr>"
        tds = []
        for c in r:
            if not isinstance(c, Td):
                tds.append(f"<td>{e(str(c))}</td>")
                continue
            attrs = "".join(f" {k}='{e(v)}'" for k, v in (
                ("class", c.cls), ("title", c.title)) if v)
            attrs += "".join(f" data-{k}='{e(v)}'" for k, v in c.data.items())
            text = e(c.text)
            if c.href:
                text = f"<a href='{e(c.href)}'>{text}</a>"
            tds.append(f"<td{attrs}>{text}</td>")
        body.append(tr + "".join(tds) + "</tr>")
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + "</tbody></table></div>")
