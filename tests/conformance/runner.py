"""Run ONNX's node tests through edgert's converters and runtime, and classify each.

    python -m tests.conformance.runner                       # every case, both targets
    python -m tests.conformance.runner -k resize --targets tflite
    python -m tests.conformance.runner --write-expectations  # accept today's outcomes
    python -m tests.conformance.runner --table docs/CONFORMANCE.md

Each (case, variant, target) is converted with ``converters.convert`` at fp32 with
the case's inputs as verification inputs, then the written file is run by
``edgert.load`` on the same inputs and compared with ONNX's *expected* outputs (the
ground truth of the node test, not ONNX Runtime, which is itself wrong on a few
cases). Outcomes:

==============  =================================================================
``pass``        written and equal to the expected outputs (ONNX's rtol/atol)
``refused``     refused before any file was written, with a reason
``wrong``       written, wrong, and edgert's verification said so
``silent``      written, wrong, and edgert's verification *passed* it (goal: none)
``false_alarm`` written and right, but edgert's verification failed it
``run_fail``    written, but the runtime could not load or run it
``error``       an exception that is not an edgert error (a bug: traceback tail kept)
``crash``       the process died (signal); ``hang``: no answer within the timeout
==============  =================================================================

The cases run in a worker process that is replaced when it dies or hangs, so one
engine crash costs one case, not the sweep.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
EXPECTATIONS = HERE / "expectations.json"
TARGETS = ("mnn", "tflite")
STATUSES = ("pass", "refused", "wrong", "silent", "false_alarm", "run_fail", "error", "crash",
            "hang")
GOOD = {"pass", "refused"}   # outcomes that are not a problem to fix (a refusal says why)


# ---------------------------------------------------------------- the worker side

def _compare(expected: Dict[str, np.ndarray], got: Dict[str, np.ndarray], rtol: float,
             atol: float) -> Optional[str]:
    """None when ``got`` equals ``expected`` as ONNX's backend tests judge it, else why not."""
    for name, ref in expected.items():
        if name not in got:
            return f"output {name!r} missing"
        res = np.asarray(got[name])
        if res.shape != ref.shape:
            return f"{name}: shape {res.shape} != expected {ref.shape}"
        if ref.dtype.kind in "biu" or ref.dtype == np.bool_:
            if not np.array_equal(res.astype(ref.dtype), ref):
                bad = int(np.sum(res.astype(ref.dtype) != ref))
                return f"{name}: {bad} of {ref.size} integer values differ"
            continue
        r, e = res.astype(np.float64), ref.astype(np.float64)
        fin = np.isfinite(e)
        # ONNX's atol (1e-7) is below one float32 ulp of most outputs: engines'
        # transcendental kernels (exp, tanh, erf) are good to a few ulp of the values
        # they combine, so the absolute floor scales with the output's magnitude.
        scale = float(np.max(np.abs(e[fin]))) if fin.any() else 0.0
        close = np.isclose(r, e, rtol=rtol, atol=max(atol, 1e-5 * scale), equal_nan=True)
        if not close.all():
            fin = fin & np.isfinite(r)
            err = float(np.max(np.abs(r - e)[fin])) if fin.any() else float("nan")
            return f"{name}: {int((~close).sum())} of {ref.size} values off (max abs {err:.3g})"
    return None


def run_case(case, target: str, work: str) -> dict:
    """Convert one case for one target, run it, judge it. Runs inside the worker."""
    import edgert
    from converters import convert
    from edgert.errors import EdgertError

    out_dir = os.path.join(work, f"{case.name}.{case.variant}.{target}")
    res = {"case": case.name, "variant": case.variant, "target": target, "op": case.op_type}
    t0 = time.perf_counter()
    try:
        report = convert(case.model, targets=[target], precision="fp32", out_dir=out_dir,
                         name="m", verify=True, verify_inputs=dict(case.feeds),
                         load_check="structure", raise_on_error=False)
    except EdgertError as exc:
        res.update(status="refused", reason=f"{type(exc).__name__}: {exc}")
        return _done(res, t0)
    except Exception as exc:   # a bug in edgert, recorded as one
        res.update(status="error", reason=f"{type(exc).__name__}: {exc}",
                   where=traceback.format_exc().strip().splitlines()[-3:])
        return _done(res, t0)
    rep = report.target(target)
    written = bool(rep.path) and os.path.exists(rep.path)
    if rep.error is not None and not written:
        bug = "backend failed: " in (rep.error or "")   # convert() wrapped a raw exception
        status = "refused" if rep.error_type in ("UnsupportedOpError", "ConversionError",
                                                 "UnsupportedOptionError", "InputError",
                                                 "TableError") and not bug else "error"
        res.update(status=status, reason=f"{rep.error_type}: {rep.error}")
        return _done(res, t0)
    ran = (rep.details or {}).get("verification_run", {}).get("outcome")
    if ran in ("crash", "hang"):     # convert() survived it in its verification child
        res.update(status=ran, reason=rep.error)
        return _done(res, t0)
    verified = rep.verification is not None and rep.verification.passed
    try:
        sess = edgert.load(rep.path, check="structure")
        try:
            got = sess.run(dict(case.feeds))
        finally:
            sess.close()
    except EdgertError as exc:
        res.update(status="run_fail", reason=f"{type(exc).__name__}: {exc}")
        return _done(res, t0)
    except Exception as exc:
        res.update(status="error", reason=f"{type(exc).__name__} running the file: {exc}")
        return _done(res, t0)
    why = _compare(case.expected, got, case.rtol, case.atol)
    if why is None:
        res["status"] = "pass" if verified else "false_alarm"
        if not verified:
            res["reason"] = (rep.error or "; ".join(rep.verification.failures)
                             if rep.verification else rep.error or "not verified")
    else:
        res.update(status="wrong" if not verified else "silent", reason=why)
    return _done(res, t0)


def _done(res: dict, t0: float) -> dict:
    res["seconds"] = round(time.perf_counter() - t0, 3)
    if "reason" in res:
        res["reason"] = str(res["reason"])[:400]
    return res


def _worker(conn, work: str) -> None:
    """Loop: receive (name, variant, target), answer with the outcome dict."""
    from tests.conformance.cases import load_cases

    cache: Dict[Tuple[str, str], object] = {}
    while True:
        msg = conn.recv()
        if msg is None:
            return
        name, variant, target = msg
        if (name, variant) not in cache:
            for c in load_cases([name]):
                cache[(c.name, c.variant)] = c
        case = cache[(name, variant)]
        try:
            conn.send(run_case(case, target, work))
        except Exception as exc:    # never lose the worker on one case's bookkeeping
            conn.send({"case": name, "variant": variant, "target": target,
                       "op": getattr(case, "op_type", "?"), "status": "error",
                       "reason": f"{type(exc).__name__}: {exc}"})


# ---------------------------------------------------------------- the parent side

class _Pool:
    """One worker process at a time, replaced after a crash or a hang."""

    def __init__(self, work: str, timeout: float) -> None:
        self.work, self.timeout = work, timeout
        self.ctx = mp.get_context("spawn")
        self.proc = None
        self.conn = None

    def _start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.work), daemon=True)
        self.proc.start()
        self.conn = parent

    def run(self, name: str, variant: str, target: str, op: str) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        base = {"case": name, "variant": variant, "target": target, "op": op}
        self.conn.send((name, variant, target))
        t0 = time.perf_counter()
        if self.conn.poll(self.timeout):
            try:
                return self.conn.recv()
            except EOFError:
                pass
        if self.proc.is_alive():   # no answer in time
            self.stop(kill=True)
            return {**base, "status": "hang", "reason": f"no answer in {self.timeout:.0f} s",
                    "seconds": round(time.perf_counter() - t0, 3)}
        code = self.proc.exitcode
        self.proc = None
        return {**base, "status": "crash", "reason": f"worker exit code {code}",
                "seconds": round(time.perf_counter() - t0, 3)}

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if not kill and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (BrokenPipeError, OSError):
                pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)
        self.proc = None


def sweep(names: Optional[Sequence[str]] = None, targets: Sequence[str] = TARGETS,
          variants: Sequence[str] = ("inputs", "constants"), timeout: float = 60.0,
          progress: bool = True) -> List[dict]:
    """Every (case, variant, target) outcome, in a fresh worker process."""
    from tests.conformance.cases import load_cases

    cases = load_cases(names, variants)
    results: List[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgert-conformance-") as work:
        old = os.environ.get("EDGERT_CACHE_DIR")
        os.environ["EDGERT_CACHE_DIR"] = os.path.join(work, "cache")
        pool = _Pool(work, timeout)
        try:
            total = len(cases) * len(targets)
            for case in cases:
                for target in targets:
                    r = pool.run(case.name, case.variant, target, case.op_type)
                    r["family"] = case.family
                    results.append(r)
                    if progress:
                        n = len(results)
                        sys.stderr.write(f"\r[{n}/{total}] {case.key} {target}: "
                                         f"{r['status']:<12}")
                        sys.stderr.flush()
        finally:
            pool.stop()
            if old is None:
                os.environ.pop("EDGERT_CACHE_DIR", None)
            else:
                os.environ["EDGERT_CACHE_DIR"] = old
    if progress:
        sys.stderr.write("\n")
    return results


# ---------------------------------------------------------------- expectations, tables

def key(r: dict) -> str:
    return f"{r['case']}[{r['variant']}]/{r['target']}"


def load_expectations(path: Path = EXPECTATIONS) -> Dict[str, str]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())["outcomes"]


def write_expectations(results: Iterable[dict], path: Path = EXPECTATIONS,
                       merge: bool = True) -> None:
    import onnx

    outcomes = load_expectations(path) if merge else {}
    outcomes.update({key(r): r["status"] for r in results})
    data = {"format": "edgert.conformance-expectations", "version": 1,
            "onnx": onnx.__version__,
            "note": "outcome per ONNX node test [variant] / target; "
                    "regenerate with python -m tests.conformance.runner --write-expectations",
            "outcomes": dict(sorted(outcomes.items()))}
    path.write_text(json.dumps(data, indent=1) + "\n")


def counts(results: Sequence[dict]) -> Dict[Tuple[str, str], Counter]:
    """(target, variant) -> Counter of statuses."""
    out: Dict[Tuple[str, str], Counter] = defaultdict(Counter)
    for r in results:
        out[(r["target"], r["variant"])][r["status"]] += 1
    return out


def family_rates(results: Sequence[dict]) -> Dict[str, Dict[str, Tuple[int, int]]]:
    """family -> target -> (passed, total), each case counted once in the form real
    models hold it: its ``constants`` variant, or ``inputs`` when it has one input."""
    best: Dict[Tuple[str, str], dict] = {}
    for r in results:
        k = (r["case"], r["target"])
        if r.get("family") and (k not in best or r["variant"] == "constants"):
            best[k] = r
    acc: Dict[Tuple[str, str], List[int]] = defaultdict(lambda: [0, 0])
    for r in best.values():
        a = acc[(r["family"], r["target"])]
        a[0] += r["status"] == "pass"
        a[1] += 1
    out: Dict[str, Dict[str, Tuple[int, int]]] = defaultdict(dict)
    for (fam, tgt), (p, n) in acc.items():
        out[fam][tgt] = (p, n)
    return out


def markdown_table(results: Sequence[dict]) -> str:
    lines = ["| target | variant | cases | " + " | ".join(STATUSES) + " | pass rate |",
             "|---|---|---|" + "---|" * len(STATUSES) + "---|"]
    for (tgt, var), c in sorted(counts(results).items()):
        n = sum(c.values())
        lines.append(f"| {tgt} | {var} | {n} | " + " | ".join(str(c.get(s, 0)) for s in STATUSES)
                     + f" | {100 * c.get('pass', 0) / max(n, 1):.0f} % |")
    fam = family_rates(results)
    tgts = sorted({r["target"] for r in results})
    lines += ["", "Pass rate per op family (each case as real models hold it: constants "
              "variant, or its only variant):", "",
              "| family | " + " | ".join(tgts) + " |", "|---|" + "---|" * len(tgts)]
    tot = {t: [0, 0] for t in tgts}
    for f in sorted(fam):
        cells = []
        for t in tgts:
            p, n = fam[f].get(t, (0, 0))
            tot[t][0] += p
            tot[t][1] += n
            cells.append(f"{p}/{n} ({100 * p / max(n, 1):.0f} %)")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines.append("| **all families** | " + " | ".join(
        f"{p}/{n} ({100 * p / max(n, 1):.0f} %)" for p, n in tot.values()) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.conformance.runner",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", dest="pattern", help="regex on case names")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--variants", default="inputs,constants")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    ap.add_argument("--json", dest="json_out", help="write every outcome to this file")
    ap.add_argument("--write-expectations", action="store_true",
                    help="record these outcomes in tests/conformance/expectations.json")
    ap.add_argument("--table", help="write the Markdown summary table to this file")
    args = ap.parse_args(argv)

    from tests.conformance.cases import case_names

    names = case_names()
    if args.pattern:
        names = [n for n in names if re.search(args.pattern, n)]
    t0 = time.perf_counter()
    results = sweep(names, [t for t in args.targets.split(",") if t],
                    [v for v in args.variants.split(",") if v], args.timeout)
    secs = time.perf_counter() - t0
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    if args.write_expectations:
        write_expectations(results)
    table = markdown_table(results)
    print(table)
    print(f"\n{len(results)} runs in {secs:.0f} s")
    expected = load_expectations()
    changed = [(key(r), expected.get(key(r)), r["status"]) for r in results
               if expected.get(key(r)) not in (None, r["status"])]
    for k, old, new in changed:
        print(f"changed: {k}: {old} -> {new}")
    if args.table:
        Path(args.table).write_text(table + "\n")
    return 1 if changed and not args.write_expectations else 0


if __name__ == "__main__":
    sys.exit(main())
