"""One target's conversion and verification, each failure kept in its TargetReport so
the other targets' results are not lost."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from converters.backends import Backend, BackendOptions
from converters.errors import ConversionError
from converters.flow.report import TargetReport
from converters.verify import compare
from edgert.errors import EdgertError


def run_target(backend: Backend, tname: str, model: Any, path: Path,
               options: BackendOptions) -> TargetReport:
    """Check (once) and write one target from its own copy of ``model``."""
    rep = TargetReport(target=tname, precision=options.precision)
    t = time.perf_counter()
    try:
        checked = backend.check(model.clone(), options)
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
    return rep


def verify_target(rep: TargetReport, feeds: Dict[str, np.ndarray],
                  reference: Dict[str, np.ndarray], desc: str,
                  thresholds: Optional[Mapping[str, float]], load_check: str,
                  threads: Optional[int]) -> None:
    """Run the written model on ``feeds`` and compare with ``reference`` (into ``rep``)."""
    import edgert

    from converters.flow.context import made

    path = made(rep.path, "the target's file")
    # MNN has a runtime precision switch: compute in fp32 so the check measures the
    # file (fp16/int8 weights), not a lower-precision kernel choice of the host.
    precision = "fp32" if path.endswith(".mnn") else "auto"
    perms_in, perms_out = io_perms(rep.details or {})
    try:
        sess = edgert.load(path, threads=threads, check=load_check, precision=precision)
        try:
            result = sess.run({k: np.transpose(v, perms_in[k]) if k in perms_in else v
                               for k, v in feeds.items()})
        finally:
            sess.close()
        result = {k: np.transpose(v, np.argsort(perms_out[k])) if k in perms_out else v
                  for k, v in result.items()}
        rep.verification = compare(reference, result, rep.target, rep.precision, thresholds,
                                   desc)
    except EdgertError as exc:
        rep.error = f"verification could not run the {rep.target} model: {exc}"
        rep.error_type, rep._exception = type(exc).__name__, exc


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
