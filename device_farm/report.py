"""``edgert farm report``: comparison tables (devices x formats x precisions) in
Markdown and HTML, plus one bar chart per model, from the results store.

A model's files in different formats (``net.onnx``, ``net.tflite``, ``net.mnn``,
``net_int8.tflite``) are one model: rows group by file stem with a precision
suffix (``_int8``, ``_fp16``, ...) removed. A cell shows the median latency in
ms (the mean where a native tool prints no median, marked ``~``), ``!`` when the
device throttled during the run, and ``error`` for a failed job.
"""
from __future__ import annotations

import html
import json
import os
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from device_farm.store import ResultStore
from edgert.formatting import fmt_num
from edgert.errors import EdgertError

_SUFFIX = re.compile(r"[-_.](int8|uint8|fp16|fp32|float16|float32|q8|quant(ized)?)$", re.I)


def model_group(name: str) -> str:
    stem = os.path.splitext(name)[0]
    return _SUFFIX.sub("", stem) or stem


def column_of(row: Dict[str, object]) -> str:
    label = row.get("model_precision") or ("fp32" if row.get("precision") in (None, "auto")
                                           else row["precision"])
    return f"{row['format']} {label}"


def cell_of(row: Dict[str, object]) -> str:
    if row["status"] != "ok":
        return "error"
    if row.get("median_ms") is not None:
        text = fmt_num(row["median_ms"])
    elif row.get("mean_ms") is not None:
        text = "~" + fmt_num(row["mean_ms"])
    else:
        text = "?"
    return text + (" !" if row.get("throttled") else "")


def comparison_tables(rows: Sequence[Dict[str, object]]
                      ) -> "OrderedDict[str, Tuple[List[str], List[str], Dict]]":
    """{model group: (devices, columns, {(device, column): cell})}."""
    groups: "OrderedDict[str, Tuple[List[str], List[str], Dict]]" = OrderedDict()
    for r in rows:
        group = model_group(str(r["model_name"]))
        devices, columns, cells = groups.setdefault(group, ([], [], {}))
        col = column_of(r)
        if r["device"] not in devices:
            devices.append(str(r["device"]))
        if col not in columns:
            columns.append(col)
        key = (r["device"], col)
        # several files can land in one cell (same group, format, precision): keep an ok one
        if key not in cells or cells[key] == "error":
            cells[key] = cell_of(r)
    for devices, columns, _ in groups.values():
        devices.sort()
        columns.sort()
    return groups


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> List[str]:
    esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in [header, *body]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return lines


def _detail_rows(rows) -> Tuple[List[str], List[List[str]]]:
    head = ["device", "model", "format", "precision", "engine", "threads", "runs", "median ms",
            "p90 ms", "p99 ms", "mean ms", "std ms", "min ms", "init ms", "first ms",
            "peak RSS MB", "warnings"]
    body = []
    for r in rows:
        if r["status"] != "ok":
            continue
        warn = "; ".join(json.loads(r["warnings_json"] or "[]"))
        body.append([r["device"], r["model_name"], r["format"], column_of(r).split(" ", 1)[1],
                     r["engine_version"] or r["engine"], fmt_num(r["threads"]),
                     fmt_num(r["runs"])] + [fmt_num(r[k]) for k in (
                         "median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
                         "init_ms", "first_run_ms", "peak_rss_mb")] + [warn])
    return head, body


def _device_rows(store: ResultStore, run_ids: Sequence[str]) -> Tuple[List[str], List[List[str]]]:
    head = ["device", "transport", "status", "arch", "SoC / CPU", "cores", "max MHz", "memory MB",
            "OS", "engines"]
    body, seen = [], set()
    for run_id in run_ids:
        for d in store.devices(run_id):
            if d["device"] in seen:
                continue
            seen.add(d["device"])
            info = json.loads(d["info_json"] or "null") or {}
            spec = json.loads(d["spec_json"] or "{}")
            body.append([d["device"], spec.get("transport", ""),
                         d["status"] + (f": {d['error']}" if d["error"] else ""),
                         info.get("arch", ""), info.get("soc") or info.get("cpu", ""),
                         str(info.get("cores", "")),
                         "/".join(str(f) for f in info.get("max_freqs_mhz", [])),
                         str(info.get("memory_mb", "")),
                         " ".join(filter(None, [info.get("os", ""), info.get("jetpack", "")])),
                         ", ".join(f"{k} {v}" for k, v in (info.get("engines") or {}).items())])
    return head, body


def write_report(db: str, out_dir: str, run_id: Optional[str] = None,
                 all_runs: bool = False, plots: bool = True) -> Dict[str, object]:
    """Write report.md, report.html and plots; return their paths and the row counts."""
    if not os.path.exists(db):
        raise EdgertError(f"{db}: no results database")
    os.makedirs(out_dir, exist_ok=True)
    with ResultStore(db) as store:
        if all_runs:
            run_ids = [r["run_id"] for r in store.runs()]
        else:
            run_id = run_id or store.latest_run_id()
            if not run_id or not store.run(run_id):
                raise EdgertError(f"no run {run_id!r} in {db}")
            run_ids = [run_id]
        rows = [r for rid in run_ids for r in store.results(rid)]
        dev_head, dev_body = _device_rows(store, run_ids)
    groups = comparison_tables(rows)
    plot_files = _plots(groups, rows, out_dir) if plots and rows else {}
    failures = [[r["device"], r["model_name"], column_of(r), r["error"] or ""]
                for r in rows if r["status"] != "ok"]
    title = f"edgert farm report: {', '.join(run_ids)}"
    md = _markdown(title, groups, plot_files, dev_head, dev_body, _detail_rows(rows), failures)
    md_path, html_path = os.path.join(out_dir, "report.md"), os.path.join(out_dir, "report.html")
    with open(md_path, "w") as f:
        f.write(md)
    with open(html_path, "w") as f:
        f.write(_html(title, groups, plot_files, dev_head, dev_body, _detail_rows(rows), failures))
    return {"markdown": md_path, "html": html_path, "plots": list(plot_files.values()),
            "rows": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "failed": len(failures), "runs": run_ids}


def print_comparison(db: str, run_id: Optional[str] = None) -> None:
    """Print the comparison tables of a run (the latest by default) on the console."""
    from edgert.formatting import print_table

    with ResultStore(db) as store:
        run_id = run_id or store.latest_run_id()
        rows = store.results(run_id) if run_id else []
    for group, (devices, columns, cells) in comparison_tables(rows).items():
        print_table(f"{group}: median latency (ms)", ["device"] + columns,
                    [[d] + [cells.get((d, c), "-") for c in columns] for d in devices],
                    caption="~ mean (no median), ! throttled")


_LEGEND = ("Median latency in ms per device (rows) and format/precision (columns); "
           "`~` mean where the tool prints no median; `!` the device throttled; "
           "`error`: see Failures.")


def _markdown(title, groups, plot_files, dev_head, dev_body, details, failures) -> str:
    out = [f"# {title}", "", _LEGEND, ""]
    for group, (devices, columns, cells) in groups.items():
        out += [f"## {group}", ""]
        out += _md_table(["device"] + columns,
                         [[d] + [cells.get((d, c), "-") for c in columns] for d in devices])
        if group in plot_files:
            out += ["", f"![{group}]({os.path.basename(plot_files[group])})"]
        out.append("")
    out += ["## Devices", ""] + _md_table(dev_head, dev_body) + [""]
    out += ["## All results", ""] + _md_table(*details) + [""]
    if failures:
        out += ["## Failures", ""] + _md_table(["device", "model", "format precision", "error"],
                                               failures) + [""]
    return "\n".join(out)


def _html_table(header, body) -> str:
    e = html.escape
    rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in body)
    return ("<table><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header)
            + f"</tr></thead><tbody>{rows}</tbody></table>")


def _html(title, groups, plot_files, dev_head, dev_body, details, failures) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}</style></head><body>",
             f"<h1>{e(title)}</h1><p>{e(_LEGEND)}</p>"]
    for group, (devices, columns, cells) in groups.items():
        parts.append(f"<h2>{e(group)}</h2>")
        parts.append(_html_table(["device"] + columns,
                                 [[d] + [cells.get((d, c), "-") for c in columns]
                                  for d in devices]))
        if group in plot_files:
            parts.append(f"<img src='{e(os.path.basename(plot_files[group]))}' alt='{e(group)}'>")
    parts += ["<h2>Devices</h2>", _html_table(dev_head, dev_body),
              "<h2>All results</h2>", _html_table(*details)]
    if failures:
        parts += ["<h2>Failures</h2>",
                  _html_table(["device", "model", "format precision", "error"], failures)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _plots(groups, rows, out_dir) -> Dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    for i, (group, (devices, columns, _)) in enumerate(groups.items()):
        data = {(r["device"], column_of(r)): r for r in rows
                if model_group(str(r["model_name"])) == group and r["status"] == "ok"}
        if not data:
            continue
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(devices) * max(1, len(columns)) / 2),
                                        3.2))
        width = 0.8 / max(1, len(columns))
        for j, col in enumerate(columns):
            xs, ys, errs = [], [], []
            for k, dev in enumerate(devices):
                r = data.get((dev, col))
                if not r:
                    continue
                mid = r["median_ms"] if r["median_ms"] is not None else r["mean_ms"]
                if mid is None:
                    continue
                xs.append(k + j * width)
                ys.append(mid)
                errs.append(max(0.0, (r["p90_ms"] or mid) - mid))
            ax.bar(xs, ys, width, yerr=[[0.0] * len(errs), errs], label=col, capsize=2)
        ax.set_xticks([k + width * (len(columns) - 1) / 2 for k in range(len(devices))])
        ax.set_xticklabels(devices, rotation=20, ha="right")
        ax.set_ylabel("median latency (ms), bar to p90")
        ax.set_title(group)
        ax.legend(fontsize="small")
        fig.tight_layout()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", group) or "model"
        path = os.path.join(out_dir, f"plot_{i:02d}_{safe}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files[group] = path
    return files
