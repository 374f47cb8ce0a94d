"""A second opinion on ONNX Runtime, the reference of ONNX sources.

ONNX Runtime computes a few ops differently from the ONNX spec, and cannot run some
others (found with ONNX's own node tests, whose expected outputs are the spec's:
tests/conformance). Verifying against it there would call a right conversion wrong
and a conversion that copies the fault right. ``ORT_FAULTS`` lists them per op; a
predicate on the node says whether this node is affected and why.

For a source holding such a node, ONNX's reference evaluator
(``onnx.reference.ReferenceEvaluator``: numpy, the spec in executable form)
evaluates that node on the very inputs ONNX Runtime gave it. When the two agree,
ONNX Runtime's outputs stand; when they disagree, the whole reference comes from
the evaluator, and the report says so. When ONNX Runtime cannot run the source at
all (batchwise GRU/RNN, opset-22 RoiAlign), the evaluator runs it. When neither
gives a reference, verification says "no trustworthy reference" and never passes.
Only flagged nodes cost a second evaluation: the evaluator is slow on whole
convolutional models.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx

from edgert.op_registry import OpRegistry

# Per op: a predicate on the node, returning why ONNX Runtime is not to be trusted on
# it (None: this node is fine).
ORT_FAULTS: OpRegistry[Callable[[onnx.NodeProto], Optional[str]]] = OpRegistry(
    "ONNX Runtime fault")


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


@ORT_FAULTS.register("Resize")
def _resize(node: onnx.NodeProto) -> Optional[str]:
    mode = _attr(node, "mode", "nearest")
    ctm = _attr(node, "coordinate_transformation_mode", "half_pixel")
    if ctm == "align_corners" and mode in ("linear", "cubic"):
        return (f"ONNX Runtime's {mode} Resize with align_corners departs from the spec when "
                f"downsampling")
    return None


@ORT_FAULTS.register("MaxUnpool")
def _maxunpool(node: onnx.NodeProto) -> Optional[str]:
    if len(node.input) > 2 and node.input[2]:
        return "ONNX Runtime's MaxUnpool with an output_shape input departs from the spec"
    return None


@ORT_FAULTS.register("RoiAlign")
def _roialign(node: onnx.NodeProto) -> Optional[str]:
    if _attr(node, "mode", "avg") == "max":
        return "ONNX Runtime's RoiAlign in max mode departs from the spec"
    return None


@ORT_FAULTS.register("GRU", "RNN")
def _batchwise(node: onnx.NodeProto) -> Optional[str]:
    if _attr(node, "layout", 0) == 1:
        return f"ONNX Runtime cannot run a batchwise (layout=1) {node.op_type}"
    return None


def ort_faults(proto: onnx.ModelProto) -> List[Tuple[onnx.NodeProto, str]]:
    """The top-level nodes of ``proto`` ONNX Runtime is known to get wrong, with why."""
    found = []
    for node in proto.graph.node:
        check = ORT_FAULTS.of_node(node)
        why = check(node) if check is not None else None
        if why:
            found.append((node, why))
    return found


@dataclass
class Reference:
    """The outputs per input set, what computed them, and what is wrong with them."""

    outputs: List[Dict[str, np.ndarray]]
    description: str
    problem: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def _label(node: onnx.NodeProto) -> str:
    return f"{node.name or node.output[0]!r} ({node.op_type})"


def evaluate(proto: onnx.ModelProto, feeds: Dict[str, np.ndarray],
             output_names: Sequence[str]) -> Dict[str, np.ndarray]:
    """The whole model on ONNX's reference evaluator, outputs cast to their declared
    element types (the evaluator sometimes computes in float64)."""
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(proto)
    outs = ev.run(None, {i.name: feeds[i.name] for i in proto.graph.input if i.name in feeds})
    types = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output
             if o.type.HasField("tensor_type")}
    result = {}
    for name, value in zip(output_names, outs):
        arr = np.asarray(value)
        if types.get(name):
            arr = arr.astype(onnx.helper.tensor_dtype_to_np_dtype(types[name]), copy=False)
        result[name] = arr
    return result


def node_disagreements(proto: onnx.ModelProto, flagged: Sequence[Tuple[onnx.NodeProto, str]],
                       feed_sets: Sequence[Dict[str, np.ndarray]]) -> List[str]:
    """Per flagged node where ONNX Runtime and the evaluator disagree on some input set:
    a sentence naming the node, why it was flagged, and by how much they differ."""
    import onnxruntime as ort
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    from converters.verify import check_output, fp32_rtol, thresholds_for

    inits = {t.name: t for t in proto.graph.initializer}
    graph_inputs = {i.name for i in proto.graph.input}
    wanted = []
    for node, _ in flagged:
        wanted += [n for n in list(node.input) + list(node.output)
                   if n and n not in inits and n not in graph_inputs and n not in wanted]
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in wanted if n not in have)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    opset = {o.domain or "": o.version for o in proto.opset_import}
    t = thresholds_for("fp32", {"rtol": fp32_rtol(8)})
    found = []
    for feeds in feed_sets:
        values = dict(zip([o.name for o in sess.get_outputs()],
                          sess.run(None, {n: feeds[n] for n in graph_inputs if n in feeds})))
        values.update(feeds)
        for node, why in flagged:
            ins = {n: values[n] if n in values else numpy_helper.to_array(inits[n])
                   for n in node.input if n}
            theirs = ReferenceEvaluator(node, opsets=opset).run(None, ins)
            for name, ev_out in zip(node.output, theirs):
                chk = check_output(name, np.asarray(ev_out).astype(values[name].dtype),
                                   values[name], t)
                if not chk.passed:
                    found.append(f"ONNX Runtime and ONNX's reference evaluator disagree at node "
                                 f"{_label(node)} ({why}; max abs difference "
                                 f"{chk.max_abs:.3g})")
                    break
        if found:
            break
    return found
