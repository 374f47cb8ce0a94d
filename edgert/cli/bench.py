"""``edgert bench MODEL``: the timing protocol of ``Session.benchmark``.

With ``--json`` this is also the device runner: the farm runs
``python -m edgert bench MODEL --json`` on boards and parses what it prints.
"""
from __future__ import annotations

HELP = "time a model with edgert's benchmark protocol"


def add_arguments(p) -> None:
    from edgert.cli.common import add_load_arguments

    from edgert.cli.checks import float_at_least, int_at_least

    add_load_arguments(p)
    p.add_argument("--runs", type=int_at_least(1), default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int_at_least(0), default=5,
                   help="untimed runs after the first (default 5)")
    p.add_argument("--min-seconds", type=float_at_least(0), default=0.0,
                   help="keep running past --runs until this many seconds have passed")
    p.add_argument("--cooldown", type=float_at_least(0), default=0.0, help="pause before starting (s)")
    p.add_argument("--input", "-i", help="inputs (.npy/.npz); default: seeded random")
    p.add_argument("--latencies", action="store_true", help="include every latency in --json")


def run(args) -> int:
    from edgert.cli.common import load_from_args, read_inputs
    from edgert.cpu_features import int8_speed_note
    from edgert.formatting import fmt_num, print_json, print_table

    from edgert.cli.progress import Progress

    with Progress.for_args(args) as progress:
        with progress.step("loading"):
            sess = load_from_args(args)
            feeds = read_inputs(args.input) if args.input else None
        with progress.step(f"{args.warmup} warm-up + {args.runs} timed runs"):
            res = sess.benchmark(runs=args.runs, warmup=args.warmup, inputs=feeds,
                                 min_seconds=args.min_seconds, cooldown_s=args.cooldown)
    if args.json:
        print_json(res.to_dict(latencies=args.latencies))
        return 0
    print_table(
        f"{res.model} on {res.engine_version}, {res.threads} threads, {res.runs} runs",
        ["init ms", "first ms", "min ms", "median ms", "p90 ms", "p99 ms", "mean ms", "std ms",
         "peak RSS MB"],
        [[fmt_num(res.init_ms), fmt_num(res.first_run_ms), fmt_num(res.min_ms),
          fmt_num(res.median_ms), fmt_num(res.p90_ms), fmt_num(res.p99_ms),
          fmt_num(res.mean_ms), fmt_num(res.std_ms), fmt_num(res.peak_rss_mb)]],
        caption=int8_speed_note(sess.engine_name, sess.file_details))
    print(progress.breakdown())
    return 0
