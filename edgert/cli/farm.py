"""``edgert farm``: benchmark models on phones, boards and the host.

    edgert farm devices                      # inventory with live state (+ attached adb devices)
    edgert farm bench m.tflite m.mnn --devices pixel7,jetson --precision fp32,fp16
    edgert farm bench --resume               # finish the last run after a kill
    edgert farm report --out farm_report     # Markdown + HTML (self-contained) + JSON
    edgert farm report --compare RUN_ID      # ... with regressions against an earlier run
    edgert farm results --json               # the stored rows

The team farm (one PostgreSQL store and queue, an agent per machine with devices):

    edgert farm agent --devices pixel7,orin --store postgresql://farm@db/farm
    edgert farm submit m.tflite m.mnn --devices pixel7,orin     # prints the run id at once
    edgert farm wait RUN_ID ; edgert farm report RUN_ID
    edgert farm serve --port 8750           # the dashboard (read-only unless --allow-submit)
    edgert farm copy-store farm_results.sqlite postgresql://farm@db/farm

The device_farm package (paramiko, adbutils, matplotlib) is imported inside each
subcommand, so ``edgert --help`` stays light on a board.
"""
from __future__ import annotations

import argparse
import json

from edgert.cli import farm_team

HELP = "benchmark models on ADB phones, SSH boards and the host (device farm)"

_DB_HELP = ("results store: a SQLite file or postgresql://USER@HOST:PORT/DB (default: "
            "$EDGERT_FARM_STORE, else farm.toml's store, else farm_results.sqlite)")
_BASELINE_HELP = ("what speed-ups are against: fp32 (the same format's fp32 file, default), "
                  "'variant:onnx fp32' (one variant) or device:NAME (a reference device)")


def _csv(text: str):
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="farm_command", metavar="SUBCOMMAND")

    d = sub.add_parser("devices", help="list devices with live state")
    d.add_argument("--inventory", help="devices.toml (default: $EDGERT_DEVICES, ./devices.toml)")
    d.add_argument("--no-probe", action="store_true", help="list the inventory only")
    d.add_argument("--no-engines", action="store_true", help="skip the engine check on devices")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument("--team", action="store_true",
                   help="the team farm's devices as their agents publish them (--store)")
    _store_arg(d)

    from edgert.cli.checks import float_at_least, int_at_least

    b = sub.add_parser("bench", help="benchmark model files on devices")
    b.add_argument("models", nargs="*", help="model files (.tflite, .mnn, .onnx)")
    b.add_argument("--inventory", help="devices.toml")
    b.add_argument("--devices", type=_csv, help="device names, comma separated (default: all)")
    b.add_argument("--tags", type=_csv, help="only devices with all these tags")
    b.add_argument("--precision", type=_csv, default=["auto"],
                   help="runtime precisions, comma separated: auto,fp32,fp16 (default auto)")
    b.add_argument("--engine", help="engine for the edgert runner (default: from the file)")
    b.add_argument("--threads", type=int_at_least(1), help="threads (default: up to 4)")
    b.add_argument("--runs", type=int_at_least(1), default=50)
    b.add_argument("--warmup", type=int_at_least(0), default=5)
    b.add_argument("--cooldown", type=float_at_least(0), default=0.0, help="pause before each job (s)")
    b.add_argument("--timeout", type=float_at_least(0.001), default=600.0, help="per-job timeout (s)")
    b.add_argument("--retries", type=int_at_least(0), default=2, help="retries on transient link errors")
    b.add_argument("--lock-wait", type=float, default=3600.0, metavar="SECONDS",
                   help="how long to wait for a device another farm process is using "
                        "(default 3600); a job still waiting then is recorded as not run")
    _store_arg(b)
    b.add_argument("--run-id", help="name of the new run (default: run-<time>-<hex>)")
    b.add_argument("--resume", nargs="?", const="", metavar="RUN_ID",
                   help="finish a killed run (the latest when no id is given)")
    b.add_argument("--progress", choices=["auto", "live", "plain", "none"], default="auto")
    b.add_argument("--report", metavar="DIR", help="write the report into DIR afterwards")
    b.add_argument("--baseline", help=_BASELINE_HELP)
    b.add_argument("--json", action="store_true", help="print the run summary as JSON")

    r = sub.add_parser("report", help="write Markdown/HTML comparison tables and plots")
    _store_arg(r)
    r.add_argument("run_id", nargs="?", metavar="RUN", help="run id (default: the latest)")
    r.add_argument("--run", help="run id (default: the latest)")
    r.add_argument("--all-runs", action="store_true", help="every run in the database")
    r.add_argument("--out", default="farm_report", help="output folder (default farm_report)")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--baseline", help=_BASELINE_HELP)
    r.add_argument("--compare", metavar="BASE_RUN",
                   help="compare with an earlier run: regressions where statistically clear")
    r.add_argument("--min-change", type=float, default=0.05, metavar="FRACTION",
                   help="smallest change a comparison flags (default 0.05: 5%%)")
    r.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when the comparison finds a regression (for CI)")

    s = sub.add_parser("results", help="list stored results")
    _store_arg(s)
    s.add_argument("--run", help="run id (default: the latest)")
    s.add_argument("--all", action="store_true", help="every attempt, not the latest per job")
    s.add_argument("--json", action="store_true")
    farm_team.add_arguments(sub, _store_arg, _csv)


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", "--db", dest="store", help=_DB_HELP)


def _store(args) -> str:
    from device_farm.store.location import resolve_store

    args.store = resolve_store(args.store)
    return args.store


def run(args) -> int:
    if hasattr(args, "store"):
        _store(args)
    handler = {"devices": _devices, "bench": _bench, "report": _report,
               "results": _results}.get(args.farm_command) or \
        farm_team.HANDLERS.get(args.farm_command or "")
    if handler is None:
        print("usage: edgert farm {devices,bench,report,results,submit,wait,agent,serve,"
              "copy-store} ... (see edgert farm -h)")
        return 2
    return handler(args)


def _devices(args) -> int:
    if args.team:
        return farm_team.team_devices(args)
    from device_farm.farm import probe_devices
    from device_farm.inventory import load_inventory
    from device_farm.transports.adb import list_devices
    from edgert.formatting import print_json, print_table

    inv = load_inventory(args.inventory)
    specs = inv.devices
    rows = ([{"name": s.name, "online": None, "spec": s.public_dict()} for s in specs]
            if args.no_probe else probe_devices(specs, engines=not args.no_engines))
    servers = {s.adb_server or "127.0.0.1:5037" for s in specs if s.transport == "adb"}
    servers.add("127.0.0.1:5037")
    listed = {(s.serial) for s in specs if s.transport == "adb"}
    for server in sorted(servers):
        for serial, state in list_devices(server):
            if serial not in listed:
                rows.append({"name": None, "online": state == "device", "discovered": True,
                             "spec": {"transport": "adb", "address": f"{serial} @ {server}"},
                             "error": None if state == "device" else state})
    if args.json:
        print_json(rows)
        return 0
    table = []
    for r in rows:
        info = r.get("info") or {}
        state = (r["error"] if r.get("busy") is not None else "not probed"
                 if r["online"] is None else "online" if r["online"]
                 else f"offline: {r.get('error')}")
        table.append([r["name"] or "(not in inventory)", r["spec"]["transport"],
                      r["spec"]["address"], state, info.get("arch", ""),
                      info.get("soc") or info.get("cpu", ""), info.get("cores", ""),
                      "/".join(str(f) for f in info.get("max_freqs_mhz", [])),
                      info.get("memory_mb", ""),
                      " ".join(filter(None, [info.get("os", ""), info.get("jetpack", "")])),
                      ", ".join(f"{k} {v}" for k, v in (info.get("engines") or {}).items())])
    print_table(f"devices ({inv.source or 'no inventory file: host only'})",
                ["name", "transport", "address", "state", "arch", "SoC / CPU", "cores",
                 "max MHz", "memory MB", "OS", "engines"], table)
    return 0


def _bench(args) -> int:
    import sys

    from device_farm import farm
    from device_farm.inventory import load_inventory
    from device_farm.progress import make_progress
    from edgert.errors import EdgertError

    inv = load_inventory(args.inventory)
    progress = make_progress(args.progress)
    ctx = progress if progress is not None else _Null()
    with ctx:
        if args.resume is not None:
            summary = farm.resume(args.resume or None, db=args.store, inventory=inv,
                                  retries=args.retries, on_event=progress,
                                  lock_wait_s=args.lock_wait)
        else:
            if not args.models:
                raise EdgertError("give model files to benchmark (or --resume)")
            summary = farm.bench(args.models, devices=args.devices, tags=args.tags, inventory=inv,
                                 db=args.store, precisions=args.precision, engine=args.engine,
                                 threads=args.threads, runs=args.runs, warmup=args.warmup,
                                 cooldown_s=args.cooldown, timeout_s=args.timeout,
                                 retries=args.retries, run_id=args.run_id, on_event=progress,
                                 argv=sys.argv, lock_wait_s=args.lock_wait)
    out = dict(summary.to_dict(), db=args.store)
    if args.report:
        from device_farm.report import write_report

        out["report"] = write_report(args.store, args.report, summary.run_id,
                                     baseline=args.baseline)["html"]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        from device_farm.report import print_overview

        print_overview(args.store, summary.run_id, args.baseline)
        print(summary.line() + f" -> {args.store}")
        for what, devices in (("dropped", summary.dropped),
                              ("unavailable", summary.unavailable)):
            for dev, why in devices.items():
                print(f"  device {dev} {what}: {why}")
        if "report" in out:
            print(f"  report: {out['report']}")
    return 130 if summary.interrupted else (0 if summary.complete else 1)


def _report(args) -> int:
    from device_farm.report import write_report

    res = write_report(args.store, args.out, args.run_id or args.run, all_runs=args.all_runs,
                       plots=not args.no_plots, baseline=args.baseline, compare_to=args.compare,
                       min_change=args.min_change)
    print(f"{res['ok']} ok, {res['failed']} failed, {res['not_run']} not run -> "
          f"{res['html']}, {res['markdown']}, {res['json']}"
          + (f", {len(res['plots'])} chart(s)" if res["plots"] else ""))
    if args.compare:
        print(f"compared with {args.compare}: {res['regressions']} regression(s), "
              f"{res['improvements']} improvement(s)")
    return 1 if args.fail_on_regression and res["regressions"] else 0


def _results(args) -> int:
    from device_farm.store import ResultStore
    from edgert.formatting import fmt_num, print_json, print_table
    from edgert.errors import EdgertError

    from device_farm.store.location import exists

    if not exists(args.store):
        raise EdgertError(f"{args.store}: no results database")
    with ResultStore(args.store) as store:
        run_id = args.run or store.latest_run_id()
        rows = store.results(run_id, latest=not args.all)
    if args.json:
        print_json(rows)
        return 0
    from device_farm.variants import variant_of_row

    print_table(f"results of {run_id}", ["job", "device", "file", "variant", "status",
                                         "median ms", "p90 ms", "mean ms", "engine", "error"],
                [[r["job_key"][:10], r["device"], r["model_name"],
                  variant_of_row(r).label(r["precision"] or "auto"), r["status"],
                  fmt_num(r["median_ms"]), fmt_num(r["p90_ms"]), fmt_num(r["mean_ms"]),
                  r["engine_version"] or r["engine"], (r["error"] or "")[:80]] for r in rows])
    return 0


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
