"""Numbers, JSON and tables for people and scripts: one copy for every package.

The CLI prints with these, and so do the libraries (the converters' verification
table, the farm's reports), which is why they live on the runtime's floor and not
in ``edgert.cli``: nothing below the CLI may import it.

rich is optional at run time (a board may run edgert from a bare zip); without
it tables print as aligned plain text.
"""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Iterable, List, Optional, Sequence

import numpy as np


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.dtype):
        return o.name
    if hasattr(o, "to_dict"):
        return o.to_dict()
    return str(o)


def _clean(o: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def json_ready(obj: Any) -> Any:
    """``obj`` as plain JSON values: numpy scalars and arrays as numbers and lists,
    dtypes by name, objects by their ``to_dict()``, NaN and inf as None."""
    return _clean(json.loads(json.dumps(obj, default=_default)))


def dumps_json(obj: Any, indent: int = 2) -> str:
    return json.dumps(json_ready(obj), indent=indent)


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj) + "\n")
    sys.stdout.flush()


def fmt_num(x: Optional[float], digits: int = 3) -> str:
    """A number for a table cell: ints as they are, floats to ``digits`` significant
    digits (at least one decimal from 100 up), missing or NaN as '-'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                caption: Optional[str] = None) -> None:
    rows = [[str(c) for c in r] for r in rows]
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        _plain_table(title, list(columns), rows, caption)
        return
    # cells are data (model names like "net[1].onnx"), never rich markup
    table = Table(title=escape(title), caption=escape(caption) if caption else None,
                  title_justify="left")
    for c in columns:
        table.add_column(escape(c), overflow="fold")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    # Piped output (make demo | tee, CI logs) would otherwise wrap at 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _plain_table(title: str, columns: List[str], rows: List[List[str]],
                 caption: Optional[str]) -> None:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    if caption:
        print(caption)


def print_kv(title: str, pairs: Sequence[tuple]) -> None:
    print_table(title, ["field", "value"], pairs)
