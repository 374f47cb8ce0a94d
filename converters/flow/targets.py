"""One target's conversion and verification, each failure kept in its TargetReport so
the other targets' results are not lost."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from converters.backends import Backend, BackendOptions
from converters.errors import ConversionError
from converters.flow.report import TargetReport
from converters.verify import compare_sets
from edgert.errors import EdgertError


AfterWrite = Callable[[TargetReport], None]


def run_targets(jobs: Sequence[Tuple[Backend, str, Any, Path, BackendOptions]],
                after_write: Optional[AfterWrite] = None) -> List[TargetReport]:
    """Every target at once, each from its own copy of the model: MNN's converter runs
    in a child process, so the TFLite writer works while it does (a thread per target;
    the reports come back in ``jobs`` order). ResNet-18 fp32 to both: the convert stage
    2.2 s -> the MNN target's 1.9 s. Each copy is made here, on this thread (no thread
    reads the shared model while another copies it), and each target starts as soon as
    its copy is made: the first (MNN) converts while the others' copies are made.
    ``after_write`` is called in the target's thread with each target written without
    error (verification's run: ``start_verification``)."""
    if len(jobs) < 2:
        return [run_target(*job, after_write=after_write) for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="edgert-target") as ex:
        futures = [ex.submit(run_target, b, n, m.clone(), p, o, clone=False,
                             after_write=after_write)
                   for b, n, m, p, o in jobs]
        return [f.result() for f in futures]


def run_target(backend: Backend, tname: str, model: Any, path: Path,
               options: BackendOptions, clone: bool = True,
               after_write: Optional[AfterWrite] = None) -> TargetReport:
    """Check (once) and write one target from its own copy of ``model`` (``clone=False``:
    ``model`` already is one), then ``after_write`` on its report."""
    from converters.flow.cpu import cpu_slot

    rep = TargetReport(target=tname, precision=options.precision)
    t = time.perf_counter()
    try:
        with cpu_slot():
            checked = backend.check(model.clone() if clone else model, options)
            res = backend.write(checked, path, options)
    except EdgertError as exc:
        rep.error, rep.error_type, rep._exception = str(exc), type(exc).__name__, exc
        return rep
    except Exception as exc:  # a backend bug must not lose the other targets' results
        wrapped = ConversionError(f"{tname} backend failed: {type(exc).__name__}: {exc}")
        wrapped.__cause__ = exc
        rep.error, rep.error_type, rep._exception = str(wrapped), "ConversionError", wrapped
        return rep
    rep.seconds = time.perf_counter() - t
    rep.path, rep.size_bytes = str(res.path), int(res.size_bytes)
    rep.op_counts, rep.notes, rep.details = dict(res.op_counts), list(res.notes), res.details
    if after_write is not None:
        after_write(rep)
    return rep


def _run_job(rep: TargetReport, sets: Sequence[Any], timeout_s: Optional[float]) -> Any:
    """The verification child's job for ``rep``'s file: each set's feeds in the file's
    own input layout."""
    from converters.flow.isolation import RunJob

    perms_in, _ = io_perms(rep.details or {})
    feeds = [{k: np.transpose(v, perms_in[k]) if k in perms_in else v
              for k, v in s.feeds.items()} for s in sets]
    return RunJob(rep.target, str(rep.path), feeds, run_options(str(rep.path)), timeout_s,
                  count_ops=not rep.op_counts)


def start_verification(rep: TargetReport, sets: Sequence[Any], threads: Optional[int],
                       timeout_s: Optional[float]) -> None:
    """Run ``rep``'s just-written file on ``sets`` in a verification child now (in the
    target's thread, while other targets still convert; the zygotes serve two children
    at once): ``verify_targets`` compares the outputs later, or runs the file again if
    the reference dropped sets the source cannot run."""
    from converters.flow.cpu import cpu_slot
    from converters.flow.isolation import run_isolated

    with cpu_slot():
        [outcome] = run_isolated([_run_job(rep, sets, timeout_s)], threads)
    rep._early_run = ([s.name for s in sets], outcome)


def verify_targets(ctx: Any, targets: Optional[Sequence[TargetReport]] = None) -> None:
    """Every written target compared with the reference (``converters.verify.compare_sets``)
    on its outputs for every input set: those of its run when it was written
    (``start_verification``) when that run had exactly these sets, else of a run now, the
    targets left together in one child process (``isolation.py``: a crash or hang there
    is the target's error, not the caller's)."""
    from converters.flow.context import made
    from converters.flow.isolation import run_isolated

    req = ctx.request
    sets, refs = made(ctx.input_sets, "input_sets"), made(ctx.reference, "reference")
    reps = [r for r in (ctx.targets if targets is None else targets)
            if r.error is None and r.path]
    names = [s.name for s in sets]
    outcomes: Dict[int, Any] = {}
    for i, rep in enumerate(reps):
        early, rep._early_run = rep._early_run, None
        if early is not None and early[0] == names:     # run on exactly these sets
            outcomes[i] = early[1]
    rest = [i for i in range(len(reps)) if i not in outcomes]
    ran = run_isolated([_run_job(reps[i], sets, req.verify_timeout) for i in rest],
                       req.threads) if rest else []
    outcomes.update(zip(rest, ran))
    for i, rep in enumerate(reps):
        outcome = outcomes[i]
        rep.details = dict(rep.details or {}, verification_run={
            "child_pid": outcome.child_pid, "seconds": round(outcome.seconds, 3),
            "outcome": "ran" if outcome.outputs is not None else outcome.error_type})
        if outcome.op_counts and not rep.op_counts:
            rep.op_counts = dict(outcome.op_counts)
        if outcome.outputs is None:
            rep.error = f"verification could not run the {rep.target} model: {outcome.error}"
            kind = outcome.error_type or "EngineError"
            rep.error_type = kind if kind not in ("crash", "hang") else "EngineError"
            rep._exception = _error(kind, rep.error)
            continue
        _, perms_out = io_perms(rep.details or {})
        results = [{k: np.transpose(v, np.argsort(perms_out[k])) if k in perms_out else v
                    for k, v in out.items()} for out in outcome.outputs]
        rep.verification = compare_sets(
            refs, results, [s.name for s in sets], rep.target, rep.precision, req.thresholds,
            depths=ctx.depths, class_scores=ctx.class_scores, reference=ctx.reference_desc,
            reference_problem=ctx.reference_problem, steps=_int8_steps(ctx, rep, refs))


def _int8_steps(ctx: Any, rep: TargetReport, refs: Sequence[Any]) -> Dict[str, float]:
    """The int8 step (table scale) of each output of an int8 target."""
    table = getattr(ctx, "quant_table", None)
    if rep.precision != "int8" or table is None or not refs:
        return {}
    return {n: float(table.activations[n].scale) for n in refs[0]
            if n in table.activations and table.activations[n].scale}


def run_options(path: str) -> Dict[str, Any]:
    """How verification loads a file: MNN computes in fp32 without Winograd, so the
    check measures the file (its fp16/int8 weights), not the host's fast kernels."""
    if path.endswith(".mnn"):
        return {"precision": "fp32", "winograd": False}
    return {}


def _error(kind: str, message: str) -> EdgertError:
    from edgert import errors

    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, EdgertError)):
        cls = errors.EngineError
    return cls(message)


def io_perms(details: Mapping[str, Any]) -> Tuple[Dict[str, tuple], Dict[str, tuple]]:
    """Per input/output name, the permutation the written model stores it in when its
    I/O layout differs from the source's (TFLite ``io_layout="nhwc"``): feeds are
    transposed by it, outputs transposed back, so the comparison is like for like."""
    layouts = details.get("io_layouts") or {}

    def perm(name: str):
        if name == "NHWC":
            return (0, 2, 3, 1)
        if name.startswith("perm"):
            return tuple(int(c) for c in name[4:])
        return None

    ins, outs = ({k: p for k, v in layouts.get(side, {}).items() if (p := perm(v))}
                 for side in ("inputs", "outputs"))
    return ins, outs
