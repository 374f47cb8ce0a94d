"""What each result is compared against: the source's outputs on every input set
(the torch module, or ONNX Runtime with a second opinion, ``second_opinion.py``),
or, for an int8 conversion of a model that carried its own quantization (QDQ ONNX,
QAT, PT2E), that model's own int8 simulation: reproducing it is the converter's job,
how far it is from float is the training's (and is noted). Also what the graph says
about its outputs: each one's depth (the fp32/fp16 bounds grow with it) and which
are a classifier's scores (the top-1 gate)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np

from converters.errors import ConversionError
from converters.flow.inputs import InputSet
from converters.flow.second_opinion import Reference
from edgert.errors import InputError


def source_reference(src: Any, sets: List[InputSet]) -> Tuple[List[InputSet], Reference]:
    """The source's outputs on each input set: the torch module, or ONNX Runtime with a
    second opinion where it is known to be wrong or cannot run
    (``second_opinion.py``). Seeded sets the source cannot run (a model traced at one
    size, integer inputs that must be indices) are dropped, with a note, when other
    sets remain; the sets returned are the ones the outputs belong to."""
    outs: List[Optional[Dict[str, np.ndarray]]] = []
    errors: List[Optional[InputError]] = []
    for s in sets:
        try:
            outs.append(src.run_reference(s.feeds))
            errors.append(None)
        except InputError as exc:
            outs.append(None)
            errors.append(exc)
    what = "PyTorch (the source module)" if src.torch_module is not None else \
        "ONNX Runtime on the source"
    notes: List[str] = []
    failed_given = [e for s, e in zip(sets, errors) if e is not None and not s.seeded]
    if failed_given or all(e is not None for e in errors):
        if src.torch_module is not None:
            raise next(e for e in errors if e is not None)
        return _evaluator_reference(src, sets, next(e for e in errors if e is not None))
    dropped = [s.name for s, e in zip(sets, errors) if e is not None]
    if dropped:
        first = next(e for e in errors if e is not None)
        notes.append(f"seeded input sets dropped, the source cannot run them: "
                     f"{', '.join(dropped)} ({str(first).split('. A model')[0][:200]})")
    kept = [(s, o) for s, o in zip(sets, outs) if o is not None]
    sets = [s for s, _ in kept]
    ref = Reference([o for _, o in kept], what, notes=notes)
    if src.torch_module is None:
        ref = _second_opinion(src, sets, ref)
    return sets, ref


def _proto(src: Any):
    import onnx_ir as ir

    return ir.serde.serialize_model(src.model)


def _evaluator_reference(src: Any, sets: List[InputSet], ort_error: InputError
                         ) -> Tuple[List[InputSet], Reference]:
    """ONNX Runtime cannot run the source: ONNX's reference evaluator does, or the
    original error stands."""
    from converters.flow.second_opinion import evaluate

    proto = _proto(src)
    outs = []
    try:
        for s in sets:
            outs.append(evaluate(proto, s.feeds, src.output_names))
    except Exception as exc:  # noqa: BLE001 - the evaluator fails in many ways: ORT's error stands
        raise InputError(f"{ort_error} (ONNX's reference evaluator cannot run it either: "
                         f"{type(exc).__name__}: {str(exc)[:200]})") from ort_error
    why = str(ort_error).split(": ", 1)[-1].split(". A model")[0][:300]
    return sets, Reference(outs, "ONNX's reference evaluator (onnx.reference)", notes=[
        f"verification reference: ONNX's reference evaluator, because ONNX Runtime cannot "
        f"run the source ({why})"])


def _second_opinion(src: Any, sets: List[InputSet], ref: Reference) -> Reference:
    """ONNX Runtime's outputs, unless a node it is known to get wrong shows it did."""
    from converters.flow.second_opinion import (ORT_FAULTS, evaluate, node_disagreements,
                                                ort_faults)

    # the faults are per op type: without such an op at the top level there is nothing to
    # check, and no serialized copy to make (0.1 s of Python on a 547-node graph)
    if not any(ORT_FAULTS.of_node(node) is not None for node in src.model.graph):
        return ref
    proto = _proto(src)
    flagged = ort_faults(proto)
    if not flagged:
        return ref
    labels = ", ".join(f"{n.name or n.output[0]!r} ({why})" for n, why in flagged)
    try:
        disagree = node_disagreements(proto, flagged, [s.feeds for s in sets])
    except Exception as exc:  # noqa: BLE001 - the node check itself failed: say so, do not pass
        ref.problem = (f"ONNX Runtime is known to be wrong at {labels}, and ONNX's reference "
                       f"evaluator could not check those nodes ({type(exc).__name__}: "
                       f"{str(exc)[:200]}): no trustworthy reference")
        return ref
    if not disagree:
        ref.notes.append(f"ONNX Runtime is known to be wrong at {labels}; ONNX's reference "
                         f"evaluator agrees with it on these inputs")
        return ref
    try:
        outs = [evaluate(proto, s.feeds, src.output_names) for s in sets]
    except Exception as exc:  # noqa: BLE001
        ref.problem = (f"{disagree[0]}, and the evaluator cannot run the whole model "
                       f"({type(exc).__name__}: {str(exc)[:200]}): no trustworthy reference")
        return ref
    return Reference(outs, "ONNX's reference evaluator (onnx.reference)", notes=ref.notes + [
        f"verification reference: ONNX's reference evaluator, not ONNX Runtime: "
        f"{disagree[0]}"])


# -- what the graph says about its outputs ------------------------------------------------

_THROUGH = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Dropout"}
_CLASSIFIER_HEADS = {"Softmax", "LogSoftmax", "Gemm", "MatMul"}


def output_depths(model: Any) -> Dict[str, int]:
    """Per graph output, the number of ops on the longest path from the inputs (a
    control-flow node counts its deepest branch or body, plus one)."""
    return _graph_depths(model.graph)


def _graph_depths(graph: Any) -> Dict[str, int]:
    depth: Dict[str, int] = {}
    for node in graph:
        sub = max((max(_graph_depths(g).values(), default=0) for g in _subgraphs(node)),
                  default=0)
        d = 1 + sub + max((depth.get(v.name, 0) for v in node.inputs if v is not None),
                          default=0)
        for v in node.outputs:
            depth[v.name] = d
    return {v.name: depth.get(v.name, 0) for v in graph.outputs}


def _subgraphs(node: Any) -> List[Any]:
    import onnx_ir as ir

    graphs = []
    for attr in node.attributes.values():
        if attr.type == ir.AttributeType.GRAPH:
            graphs.append(attr.value)
        elif attr.type == ir.AttributeType.GRAPHS:
            graphs.extend(attr.value)
    return graphs


def class_score_outputs(model: Any) -> Set[str]:
    """Graph outputs that are a classifier's scores: rank 2 ([batch, classes]), made by
    Softmax, LogSoftmax, Gemm, MatMul or a bias Add after a MatMul (through Identity,
    Reshape, Flatten, Squeeze, Unsqueeze, Cast)."""
    found = set()
    for out in model.graph.outputs:
        if out.shape is not None and len(out.shape) != 2:
            continue
        node = out.producer()
        while node is not None and node.op_type in _THROUGH and node.inputs:
            node = node.inputs[0].producer() if node.inputs[0] is not None else None
        if node is None:
            continue
        if node.op_type in _CLASSIFIER_HEADS or (node.op_type == "Add" and any(
                v is not None and v.producer() is not None
                and v.producer().op_type == "MatMul" for v in node.inputs)):
            found.add(out.name)
    return found


def simulation_reference(simulated: Dict[str, np.ndarray],
                         float_reference: Dict[str, np.ndarray], what: str,
                         notes: List[str], first: bool = True) -> Dict[str, np.ndarray]:
    """``simulated`` as the reference, with a note (for the ``first`` input set) of how
    far it is from float."""
    from converters.verify import metrics

    if not first:
        return simulated
    gaps = []
    for n, ref in float_reference.items():
        cos = metrics(ref, simulated[n]).get("cosine")
        gaps.append(f"{n} cosine {cos:.6f}" if cos is not None else f"{n} -")
    notes.append(f"verification reference: {what} (that simulation against the float "
                 f"model: " + ", ".join(gaps) + ")")
    return simulated


def torch_simulation(qat: Any, feeds: Dict[str, np.ndarray], src: Any
                     ) -> Dict[str, np.ndarray]:
    """PyTorch's own int8 simulation of a QAT or PT2E model, by output name."""
    import torch

    from converters.frontends.quantized import trained_producer
    from converters.frontends.torch_export import flatten_outputs

    producer = trained_producer(qat)
    if producer is None:
        raise ConversionError(f"{type(qat).__name__} is neither an eager QAT model nor a "
                              f"PT2E graph")
    inputs = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in src.input_names]
    outs = flatten_outputs(producer.simulate(qat, inputs))
    if len(outs) != len(src.output_names):
        raise ConversionError(f"the quantized model gave {len(outs)} outputs, its export has "
                              f"{len(src.output_names)}")
    return {n: o.detach().cpu().numpy() for n, o in zip(src.output_names, outs)}
