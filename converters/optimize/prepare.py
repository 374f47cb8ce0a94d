"""Everything a search needs before its first candidate, done once.

1. The base: the model converted at fp32 for the target and verified against its
   source (``convert``); its optimized ONNX is what every candidate is built from,
   so a PyTorch model is exported once.
2. The units (``units.py``) of that graph.
3. Activation ranges, calibrated once on the base (``--calibration``, default: the
   first samples of the evaluation inputs).
4. Error localization: the base in full int8 compared tensor by tensor with float
   (``converters.quant_debug`` on the target itself), and per unit the ops whose own
   dB lost is highest: what that unit's ``int8-mixed`` option keeps float.
5. The options of each unit (``space.SpaceSpec.options``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from converters.optimize.space import SpaceSpec, UnitSpace
from converters.optimize.units import Unit

#: an op joins its unit's int8-mixed list when it loses at least this much SNR itself
MIXED_MIN_DB = 1.0
#: and at most this many ops per unit stay float in int8-mixed
MIXED_MAX_OPS = 2
FUSABLE = ("Relu", "Clip")


@dataclass
class Problem:
    """The base model and the space of a search."""

    name: str
    base_onnx: str
    base_file: str
    units: List[Unit]
    space: UnitSpace
    spec: SpaceSpec
    activations: Any                      # QuantTable (activation ranges only)
    calibration: Any
    input_names: List[str]
    input_shapes: Dict[str, List[Any]]
    notes: List[str] = field(default_factory=list)
    localization: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class Base:
    """The model converted at fp32 for the target: the graph candidates start from."""

    name: str
    onnx: str
    file: str
    input_names: List[str]
    input_shapes: Dict[str, List[Any]]


def convert_base(model: Any, target: str, out_dir: str, *, name: Optional[str] = None,
                 example_inputs: Any = None, input_shapes: Any = None,
                 backend_options: Any = None) -> Base:
    """``model`` converted at fp32 and verified against its source (a torch model is
    exported here, once)."""
    from converters.api import convert

    rep = convert(model, targets=(target,), out_dir=os.path.join(out_dir, "base"), name=name,
                  example_inputs=example_inputs, input_shapes=input_shapes,
                  backend_options=backend_options)
    names, shapes = _inputs(rep.optimized_path)
    return Base(rep.name, rep.optimized_path, str(rep.targets[0].path), names, shapes)


def prepare(base: Base, target: str, spec: SpaceSpec, calibration_data: Any,
            localize: bool = True) -> Problem:
    """The units, calibration and per-unit options of the base model."""
    spec = spec.for_target(target)
    units = _units(base.onnx)
    activations = _calibrate(base.onnx, calibration_data)
    problem = Problem(base.name, base.onnx, base.file, units, UnitSpace(), spec, activations,
                      calibration_data, base.input_names, base.input_shapes)
    mixed: List[List[str]] = [[] for _ in units]
    if localize and "int8-mixed" in spec.precisions:
        mixed = _localize(problem, target, calibration_data)
    problem.space = UnitSpace([spec.options(bool(u.prunable), bool(u.sparsifiable),
                                            bool(mixed[u.index])) for u in units], mixed)
    problem.notes.append(f"{len(units)} unit(s): " + "; ".join(u.describe() for u in units))
    return problem


def _units(base_onnx: str) -> List[Unit]:
    from converters.frontends import load_source
    from converters.optimize.units import find_units
    from converters.passes import optimize
    from converters.pruning import CLEANUP_PASSES

    model = load_source(base_onnx).model.clone()
    optimize(model, list(CLEANUP_PASSES))
    return find_units(model)


def _inputs(base_onnx: str):
    from quant_tables.onnx_tensors import input_specs, load_model

    specs = input_specs(load_model(base_onnx))
    return list(specs), {k: list(v) for k, v in specs.items()}


def _calibrate(base_onnx: str, data: Any):
    from edgert.errors import InputError
    from quant_tables.producers.calibrate import calibrate

    if data is None:
        raise InputError("the search needs calibration data for its int8 options: give "
                         "--calibration (or an --eval with inputs)")
    return calibrate(base_onnx, data, weights=False, limit=64)


def _localize(problem: Problem, target: str, data: Any) -> List[List[str]]:
    """Per unit, the node names its int8-mixed option keeps float."""
    import copy

    from converters.quant_debug import debug_int8
    from quant_tables.producers.calibrate import weight_entries
    from quant_tables.onnx_tensors import load_model

    proto = load_model(problem.base_onnx)
    table = copy.deepcopy(problem.activations)
    table.weights.update(weight_entries(proto))
    try:
        report = debug_int8(proto, table, data, target=target)
    except Exception as exc:  # noqa: BLE001 - localization is an option, not a requirement
        problem.notes.append(f"error localization failed ({type(exc).__name__}: {exc}); "
                             "no int8-mixed options")
        return [[] for _ in problem.units]
    producer = {o: n for n in proto.graph.node for o in n.output}
    problem.localization = [r.to_dict() for r in report.layers]
    out: List[List[str]] = []
    for u in problem.units:
        own = set(u.outputs)
        rows = sorted((r for r in report.layers if r.tensor in own and r.db_lost >= MIXED_MIN_DB),
                      key=lambda r: -r.db_lost)[:MIXED_MAX_OPS]
        nodes: List[str] = []
        for r in rows:
            node = producer.get(r.tensor)
            if node is None:
                continue
            nodes.append(node.name)
            if node.op_type in FUSABLE and node.input and node.input[0] in producer:
                nodes.append(producer[node.input[0]].name)    # the conv it is fused into
        out.append(list(dict.fromkeys(nodes)))
    return out


def calibration_sample(inputs: Dict[str, Any], count: int = 64) -> Dict[str, Any]:
    """The first ``count`` samples of evaluation inputs, as calibration data."""
    return {k: v[:count] for k, v in inputs.items()}

