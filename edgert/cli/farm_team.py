"""The team farm's ``edgert farm`` subcommands: submit, wait, agent, serve,
copy-store (the one-machine ones are in ``farm.py``, which adds these).

    edgert farm agent --devices pixel7,orin --store postgresql://farm@db/farm
    edgert farm submit m.tflite m.mnn --devices pixel7,orin   # prints the run id at once
    edgert farm wait RUN_ID                                    # follows it; exit 0 = all ok
    edgert farm serve --port 8750 [--allow-submit]             # the dashboard
    edgert farm copy-store farm_results.sqlite postgresql://farm@db/farm
"""
from __future__ import annotations

import json
import sys

_STALE_HELP = ("an agent silent this long is dead: its jobs are retried (default "
               "$EDGERT_FARM_STALE_S, else 15)")


def add_arguments(sub, store_arg, csv) -> None:
    s = sub.add_parser("submit", help="queue model files on the team farm; print the run id")
    s.add_argument("models", nargs="+", help="model files (.tflite, .mnn, .onnx)")
    store_arg(s)
    s.add_argument("--devices", type=csv, help="device names (default: every served device)")
    s.add_argument("--tags", type=csv, help="only devices with all these tags")
    s.add_argument("--precision", type=csv, default=["auto"], help="auto,fp32,fp16")
    s.add_argument("--engine")
    s.add_argument("--threads", type=int)
    s.add_argument("--runs", type=int, default=50)
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--cooldown", type=float, default=0.0)
    s.add_argument("--timeout", type=float, default=600.0, help="per-job timeout (s)")
    s.add_argument("--retries", type=int, default=2)
    s.add_argument("--run-id")
    s.add_argument("--wait-for-agent", type=float, metavar="SECONDS",
                   help="queue for devices no agent serves now; after SECONDS their jobs "
                        "are recorded as not run (default: refuse such devices)")
    s.add_argument("--max-attempts", type=int, default=2,
                   help="tries of a job whose agent died during it, before it is recorded "
                        "failed (default 2)")
    s.add_argument("--wait", action="store_true", help="follow the run after queuing it")
    s.add_argument("--json", action="store_true")

    w = sub.add_parser("wait", help="follow a queued run until every job ended")
    w.add_argument("run_id", metavar="RUN")
    store_arg(w)
    w.add_argument("--timeout", type=float, help="give up after SECONDS (exit 3)")
    w.add_argument("--json", action="store_true")

    a = sub.add_parser("agent", help="serve this machine's devices to the team farm")
    store_arg(a)
    a.add_argument("--inventory", help="devices.toml of this machine")
    a.add_argument("--devices", type=csv, help="devices to serve (default: the inventory's)")
    a.add_argument("--name", help="agent name (default HOST-PID)")
    a.add_argument("--heartbeat", type=float, default=2.0, metavar="SECONDS")
    a.add_argument("--stale-after", type=float, metavar="SECONDS", help=_STALE_HELP)
    a.add_argument("--lock-wait", type=float, default=3600.0, metavar="SECONDS")
    a.add_argument("--no-engines", action="store_true", help="skip the engine probe")

    v = sub.add_parser("serve", help="the dashboard: runs, devices, reports, history")
    store_arg(v)
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8750)
    v.add_argument("--allow-submit", action="store_true",
                   help="let the page queue runs of files already in the store")

    c = sub.add_parser("copy-store", help="copy a store's runs into another (SQLite -> "
                                          "PostgreSQL)")
    c.add_argument("source", help="the store to copy from (a SQLite file)")
    c.add_argument("target", help="the store to copy into (postgresql://...)")
    c.add_argument("--json", action="store_true")


def _submit(args) -> int:
    from device_farm.team.submit import submit

    run_id = submit(args.store, args.models, devices=args.devices, tags=args.tags,
                    precisions=args.precision, engine=args.engine, threads=args.threads,
                    runs=args.runs, warmup=args.warmup, cooldown_s=args.cooldown,
                    timeout_s=args.timeout, retries=args.retries, run_id=args.run_id,
                    agent_wait_s=args.wait_for_agent, max_attempts=args.max_attempts,
                    argv=sys.argv)
    if args.wait:
        args.run_id, args.timeout = run_id, None
        return _wait(args)
    print(json.dumps({"run_id": run_id}) if args.json else run_id)
    if not args.json:
        print(f"queued; follow it with: edgert farm wait {run_id}", file=sys.stderr)
    return 0


def _wait(args) -> int:
    from device_farm.team.submit import wait_run

    state = wait_run(args.store, args.run_id, args.timeout,
                     on_state=lambda s: print(f"[farm] {s.line()}", file=sys.stderr,
                                              flush=True))
    if args.json:
        print(json.dumps(state.to_dict(), indent=2))
    else:
        print(state.line() + ("" if state.done else " (still running: gave up waiting)"))
    if not state.done:
        return 3
    return 0 if state.ok == state.planned else 1


def _agent(args) -> int:
    from device_farm.inventory import load_inventory
    from device_farm.team.agent import Agent, AgentOptions
    from device_farm.team.janitor import stale_after

    agent = Agent(args.store, load_inventory(args.inventory), args.devices, args.name,
                  AgentOptions(heartbeat_s=args.heartbeat,
                               stale_s=args.stale_after or stale_after(),
                               lock_wait_s=args.lock_wait,
                               probe_engines=not args.no_engines))
    agent.start()
    agent.serve()
    return 0


def _serve(args) -> int:
    from device_farm.dashboard import serve

    serve(args.store, args.host, args.port, allow_submit=args.allow_submit)
    return 0


def _copy_store(args) -> int:
    from device_farm.store.copy import copy_store

    res = copy_store(args.source, args.target)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{len(res['copied'])} run(s) copied ({res['results']} result rows), "
              f"{len(res['skipped'])} already there")
    return 0


def team_devices(args) -> int:
    """``edgert farm devices --team``: every device an agent serves, with its live state."""
    from device_farm.dashboard.data import devices_page
    from device_farm.store import ResultStore
    from edgert.formatting import print_json, print_table

    with ResultStore(args.store) as store:
        rows = devices_page(store)
    if args.json:
        print_json(rows)
        return 0
    print_table(f"team devices ({args.store})",
                ["device", "state", "agent", "heartbeat s", "transport", "address",
                 "throttled", "busy with", "since", "error"],
                [[r["name"], r["state"], f"{r['agent_id']} on {r['agent_host']}", r["age"],
                  r["transport"] or "", r["address"], "yes" if r["throttled"] else "no",
                  f"{r['busy_run_id']}: {r['busy_job']}" if r["busy_run_id"] else "",
                  (r["busy_since"] or "")[:19], r["error"] or ""] for r in rows])
    return 0


HANDLERS = {"submit": _submit, "wait": _wait, "agent": _agent, "serve": _serve,
            "copy-store": _copy_store}
