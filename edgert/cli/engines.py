"""``edgert engines``: which engines are installed here, and why not the others."""
from __future__ import annotations

HELP = "list the inference engines installed here"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from edgert.formatting import print_json, print_table
    from edgert.engines import engine_class, engine_names

    rows = []
    for name in engine_names():
        cls = engine_class(name)
        reason = cls.available()
        rows.append({"engine": name, "formats": list(cls.formats),
                     "available": reason is None,
                     "version": cls.version() if reason is None else None,
                     "reason": reason})
    if args.json:
        print_json(rows)
    else:
        print_table("engines", ["engine", "formats", "version", "status"],
                    [[r["engine"], ",".join(r["formats"]), r["version"] or "-",
                      "ok" if r["available"] else r["reason"]] for r in rows])
    return 0
