"""Can MNN take this graph? The answer comes from MNN itself.

MNN's converter prints the ONNX ops it supports (``--OP``); that list is read
once per MNN version (in a child process, cached under $EDGERT_CACHE_DIR) and
every node is checked against it before conversion, so an unsupported op is
named (node, op type, target) instead of surfacing as a converter crash or a
model that fails at run time. Listed ops that MNN computes wrongly, crashes or hangs
on (``WRONG``, measured; rows in ``wrong_ops.py``) count as unsupported: those a rewrite
(``rewrites.py``) or the decomposition table covers are rewritten, the others refused
with the reason, before anything is written. Ops in a non-ONNX domain (custom ops)
are never supported: MNN's converter reads standard ONNX only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, FrozenSet, Iterator, Optional, Tuple, Union

import onnx_ir as ir

from converters.errors import ConversionError, UnsupportedOpError
from edgert.op_registry import OpRegistry, is_default_domain, op_label

TARGET = "mnn"
_OPS: Optional[FrozenSet[str]] = None
_LIST_OPS = ("import _tools, sys\n"
             "_tools.mnnconvert(['mnnconvert', '-f', 'ONNX', '--OP'])\n"
             "sys.stdout.flush()\n")


def _cache_file() -> Path:
    import importlib.metadata as md

    try:
        version = md.version("MNN")
    except md.PackageNotFoundError:
        version = "unknown"
    base = os.environ.get("EDGERT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "edgert")
    return Path(base) / f"mnn-onnx-ops-{version}.json"


def supported_ops() -> FrozenSet[str]:
    """The ONNX op types MNN's converter accepts (as MNN lists them)."""
    global _OPS
    if _OPS is not None:
        return _OPS
    cache = _cache_file()
    if cache.exists():
        try:
            _OPS = frozenset(json.loads(cache.read_text()))
            return _OPS
        except (OSError, ValueError):
            pass
    try:
        proc = subprocess.run([sys.executable, "-c", _LIST_OPS], capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise ConversionError("MNN's converter did not list its ops within 120 s") from None
    lines = proc.stdout.splitlines()
    if "Dump ONNX support Ops" not in lines:
        raise ConversionError("MNN's converter did not list its ONNX ops: "
                              + " | ".join((proc.stdout + proc.stderr).splitlines()[-3:]))
    start = lines.index("Dump ONNX support Ops") + 1
    ops = [ln.strip() for ln in lines[start:] if ln.strip() and not ln.startswith("Total")]
    _OPS = frozenset(ops)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(sorted(_OPS)))
    except OSError:
        pass
    return _OPS


def _nodes(model: ir.Model) -> Iterator[ir.Node]:
    yield from ir.traversal.RecursiveGraphIterator(model.graph)


# Ops MNN lists but computes wrongly, crashes or hangs on (measured on MNN 3.6 with ONNX's
# node tests; rows in wrong_ops.py): a reason (or a function of the node giving one) makes
# them count as unsupported, so a rewrite (rewrites.py) or a decomposition is used instead,
# or the node is refused with the reason.
WRONG: OpRegistry[Union[str, Callable[[ir.Node], Optional[str]]]] = OpRegistry(
    "op MNN computes wrongly", modules=("converters.mnn.wrong_ops",))


def _cubic_resize(node: ir.Node) -> Optional[str]:
    a = node.attributes
    if a.get_string("mode", "nearest") != "cubic":
        return None
    coord = a.get_string("coordinate_transformation_mode", "half_pixel")
    if coord in ("align_corners", "asymmetric") and a.get_float("cubic_coeff_a", -0.75) == -0.75 \
            and not a.get_int("exclude_outside", 0):
        return None
    return (f"MNN's cubic Resize matches ONNX only for align_corners/asymmetric coordinates "
            f"with cubic_coeff_a=-0.75 (this one: {coord}, cosine 0.88 measured for "
            "half_pixel)")


def node_reason(node: ir.Node) -> Optional[str]:
    """Why MNN cannot take ``node`` (None: it can)."""
    if not is_default_domain(node.domain):
        return (f"op domain {node.domain!r} is not standard ONNX; MNN's converter "
                "reads ai.onnx ops only")
    if node.op_type not in supported_ops():
        return "not in the ONNX ops MNN's converter lists (mnnconvert --OP)"
    if node.meta.get("edgert.mnn_rewritten"):    # rewrites.REWRITTEN: built to be right
        return None
    wrong = WRONG.of_node(node)
    return wrong(node) if callable(wrong) else wrong


def unsupported_node(model: ir.Model,
                     reason_of: Optional[Callable[[ir.Node], Optional[str]]] = None
                     ) -> Optional[Tuple[ir.Node, str]]:
    """The first node MNN cannot take, with the reason, or None."""
    for node in _nodes(model):
        reason = (reason_of or node_reason)(node)
        if reason:
            return node, reason
    return None


def _is_constant(v: ir.Value) -> bool:
    p = v.producer()
    return v.const_value is not None or (p is not None and p.op_type == "Constant")


def _zero_size(v: ir.Value) -> bool:
    return v.shape is not None and any(d == 0 for d in v.shape if isinstance(d, int))


def check_model(model: ir.Model,
                reason_of: Optional[Callable[[ir.Node], Optional[str]]] = None) -> None:
    """Raise UnsupportedOpError naming the first node MNN cannot take (or InputError for
    an input or output with no elements)."""
    for kind, values in (("input", model.graph.inputs), ("output", model.graph.outputs)):
        for v in values:
            if _zero_size(v):
                from edgert.errors import InputError
                raise InputError(f"{TARGET}: graph {kind} {v.name!r} has no elements (shape "
                                 f"{[d if isinstance(d, int) else str(d) for d in v.shape]});"
                                 " MNN and edgert's runtime take no empty tensors")
    for v in model.graph.outputs:
        if v.shape is not None and len(v.shape) == 0 and _is_constant(v):
            from edgert.errors import InputError
            raise InputError(f"{TARGET}: graph output {v.name!r} is a constant scalar (the "
                             "model computes it from shapes alone); MNN returns a constant "
                             "scalar with shape [1]")
    found = unsupported_node(model, reason_of)
    if found:
        from converters.passes.base import node_label

        node, reason = found
        raise UnsupportedOpError(node_label(node), op_label(node.domain, node.op_type), TARGET,
                                 reason)
