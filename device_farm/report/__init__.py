"""Farm reports: cells (one file on one device) -> tables, charts, comparisons.

``write_report`` writes report.md, report.html (self-contained) and report.json;
``print_overview`` prints a run's overview on the console. Modules: ``cells``
(rows -> cells, baselines and speed-ups), ``stats`` (run-vs-run comparison),
``charts`` (matplotlib), ``document`` (Markdown/HTML), ``compose`` (the report).
"""
from __future__ import annotations

from device_farm.report.compose import print_overview, write_report

#: the name ``edgert farm bench`` and older scripts use
print_comparison = print_overview

__all__ = ["write_report", "print_overview", "print_comparison"]
