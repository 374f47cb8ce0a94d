"""The "tflite" backend: optimized ONNX (onnx_ir) -> .tflite, written directly (no TensorFlow).

Steps: refuse options we cannot honor; fold multi-node patterns (patterns.py);
decompose ops TFLite lacks (``converters.passes.decompose``: Mish, Softplus, ...);
check every node (support.py) before writing anything; plan the layout
(converters.layout); lower node by node through the registry into a
SubgraphBuilder; serialize (writer.py). The result reports op counts, how many
TRANSPOSE ops remain (and how many sit at the I/O boundary), and each I/O's
stored layout, so a caller feeding NHWC knows what to feed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from converters.backends import (Backend, BackendOptions, BackendResult, Checked,
                                 register_backend)
from converters.layout import IO_LAYOUTS, plan_layout
from converters.layout.graph import opset_of
from converters.layout.perm import is_identity
from converters.passes import decompose
from converters.tflite import registry, support
from converters.tflite.builder import SubgraphBuilder
from converters.tflite.context import LoweringContext
from converters.tflite.options import TfliteOptions
from converters.tflite.patterns import fold_patterns
from converters.tflite.float64 import demote_float64, has_float64
from converters.tflite.precision import POLICIES, policy_for
from converters.tflite.quant import ActivationQuant
from converters.tflite.writer import serialize
from edgert.errors import UnsupportedOptionError
from converters.errors import ConversionError

FULL_INT8_NOTE = ("full int8 needs a quantization table (precision='int8' with quant_table; "
                  "converters.convert completes one from a QAT model or calibration data)")


def _check_options(options: BackendOptions) -> None:
    if options.precision == "int8" and options.quant_table is None:
        raise UnsupportedOptionError(f"tflite: {FULL_INT8_NOTE}")
    if options.precision not in POLICIES and options.precision != "int8":
        raise UnsupportedOptionError(
            f"tflite: precision {options.precision!r} is not supported; "
            f"choose one of {', '.join(POLICIES)}")
    if options.io_layout not in IO_LAYOUTS:
        raise UnsupportedOptionError(
            f"tflite: io_layout {options.io_layout!r}; choose one of {', '.join(IO_LAYOUTS)}")
    if options.io_dtype not in ("float", "int8"):
        raise UnsupportedOptionError(f"tflite: io_dtype {options.io_dtype!r}; choose float or int8")
    if options.io_dtype == "int8" and options.precision != "int8":
        raise UnsupportedOptionError("tflite: io_dtype='int8' needs precision='int8'")
    options.knobs(TfliteOptions)


def _layout_name(perm) -> str:
    if perm is None or is_identity(perm):
        return "source"
    if len(perm) == 4 and tuple(perm) == (0, 2, 3, 1):
        return "NHWC"
    return "perm" + "".join(map(str, perm))


def lower_model(model, options: BackendOptions,
                activation_quant: Optional[ActivationQuant] = None
                ) -> Tuple[SubgraphBuilder, Dict[str, Any]]:
    """Lower a supported, pattern-folded model; returns the subgraph and I/O facts.

    ``activation_quant`` (a ``quant.ActivationQuant``) is the lowering-time int8 hook:
    tensors it names are written int8 with its scale and zero point.
    """
    graph = model.graph
    plan = plan_layout(graph, options.io_layout)
    sg = SubgraphBuilder()
    # full int8 lowers the float graph first; full_int8.py quantizes it afterwards
    # (the lowering-time activation_quant hook stays available to other callers)
    weights = "fp32" if options.precision == "int8" else options.precision
    ctx = LoweringContext(sg, plan, policy_for(weights, options.knobs(TfliteOptions)),
                          quant=activation_quant)
    opset = opset_of(model)
    inputs: List[Tuple[str, int]] = []
    io: Dict[str, Dict[str, str]] = {"inputs": {}, "outputs": {}}
    for v in graph.inputs:
        if v.const_value is not None:
            continue
        idx = ctx.output(None, value=v, perm=plan.perm(v))
        sg.inputs.append(idx)
        inputs.append((v.name, idx))
        io["inputs"][v.name] = _layout_name(plan.perm(v))
        _default_dynamic_dims(sg.tensors[idx])
    for node in graph:
        if id(node) in ctx.consumed:
            continue
        entry = registry.find(node.op_type, node.domain, opset)
        entry.fn(node, ctx)
    outputs: List[Tuple[str, int]] = []
    for v in graph.outputs:
        perm = plan.output_perms.get(v.name)
        idx = ctx.tensor_of(v, perm)
        sg.outputs.append(idx)
        outputs.append((v.name, idx))
        io["outputs"][v.name] = _layout_name(perm if perm is not None else ctx.perm(v))
    sg.remove_dead_ops()
    return sg, {"inputs": inputs, "outputs": outputs, "io_layouts": io, "plan": plan,
                "notes": ctx.notes + ctx.policy.notes()}


def prepare(model: Any):
    """(model ready to check and lower, decomposition report): multi-node patterns folded,
    ops TFLite lacks decomposed (``converters.passes.decompose``); the caller's model is
    never changed (a copy is made when anything changes)."""
    folded = fold_patterns(model)
    opset = opset_of(folded)
    return decompose.prepared(folded, lambda n: support.node_reason(n, opset),
                              copy=folded is model)


def _boundary_transposes(sg: SubgraphBuilder) -> int:
    """TRANSPOSE ops reading a graph input or writing a graph output."""
    ins, outs = set(sg.inputs), set(sg.outputs)
    return sum(1 for r in sg.ops if r.builtin == "TRANSPOSE"
               and (r.inputs[0] in ins or r.outputs[0] in outs))


@register_backend
class TFLiteBackend(Backend):
    name = "tflite"
    extension = ".tflite"
    options_type = TfliteOptions

    def check(self, model: Any, options: BackendOptions) -> Checked:
        _check_options(options)
        if options.precision == "int8":
            from converters.passes.subgraphs import has_subgraphs
            if has_subgraphs(model):    # full_int8.py rewrites the main subgraph only
                raise UnsupportedOptionError(
                    "tflite: full int8 of a model with control flow (If/Loop subgraphs) is "
                    "not supported; convert it at fp32, fp16 or int8_weights")
        notes = []
        if has_float64(model):              # TFLite has no float64 kernels
            model = model.clone()
            count = demote_float64(model)
            notes.append(f"{count} float64 value(s) computed in float32 (TFLite has no float64 "
                         "kernels; PyTorch's TorchScript exporter writes float64 where PyTorch "
                         "computed float32)")
        model, decomposed = prepare(model)
        support.check_model(model)
        return Checked(model, notes + decomposed.notes(self.name))

    def convert(self, model: Any, out_path: Path, options: BackendOptions, *,
                activation_quant: Optional[ActivationQuant] = None) -> BackendResult:
        """``check`` then ``write``; ``activation_quant``: see ``lower_model``."""
        return self.write(self.check(model, options), Path(out_path), options,
                          activation_quant=activation_quant)

    def write(self, checked: Checked, out_path: Path, options: BackendOptions, *,
              activation_quant: Optional[ActivationQuant] = None) -> BackendResult:
        t0 = time.perf_counter()
        model = checked.model
        int8 = None
        try:
            sg, facts = lower_model(model, options, activation_quant)
            if options.precision == "int8":
                from converters.tflite.full_int8 import quantize_subgraph
                facts["inputs"], facts["outputs"], int8 = quantize_subgraph(
                    sg, model, options.quant_table, options.io_dtype, facts["inputs"],
                    facts["outputs"])
            sparse = None
            if options.sparsity_table is not None:
                from converters.tflite.sparse import sparsify
                sparse = sparsify(sg, model, options.sparsity_table, options.precision,
                                  hybrid=options.knobs(TfliteOptions).tflite_sparse_hybrid)
            data = serialize(sg, facts["inputs"], facts["outputs"],
                             description=f"edgert ({options.precision})")
        except (ValueError, KeyError, IndexError) as exc:
            raise ConversionError(f"tflite: lowering failed: {exc}") from exc
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(data)
        counts = sg.op_counts()
        transposes = counts.get("TRANSPOSE", 0)
        boundary = _boundary_transposes(sg)
        notes = [f"{transposes} TRANSPOSE op(s) remain ({boundary} at the I/O boundary)"]
        notes += checked.notes
        if options.io_layout == "nhwc":
            notes.append("I/O layouts: " + ", ".join(
                f"{k}={v}" for d in facts["io_layouts"].values() for k, v in d.items()))
        notes += facts["notes"]
        if int8 is not None:
            notes += int8.notes()
        if sparse is not None:
            notes += sparse.notes()
        details = {"transposes": transposes, "boundary_transposes": boundary,
                   "io_layouts": facts["io_layouts"], "precision": options.precision,
                   "seconds": time.perf_counter() - t0, "tensors": len(sg.tensors),
                   "operators": len(sg.ops)}
        if int8 is not None:
            details["int8"] = int8.to_dict()
        if sparse is not None:
            details["sparsity"] = sparse.to_dict()
        return BackendResult(target=self.name, path=out_path, size_bytes=len(data),
                             op_counts=counts, notes=notes, details=details)


def convert_onnx(model: Any, out_path: Path, **option_fields: Any) -> BackendResult:
    """Convenience: ``TFLiteBackend().convert`` with ``BackendOptions(**option_fields)``."""
    return TFLiteBackend().convert(model, Path(out_path), BackendOptions(**option_fields))


__all__ = ["TFLiteBackend", "convert_onnx", "lower_model"]


def _default_dynamic_dims(t) -> None:
    """The shape an input is allocated with at load: dynamic dims other than the batch get
    ``DYNAMIC_DIM`` rather than 1, so strided layers have something to work on until the
    first run resizes the input (XNNPACK refuses to prepare a 5x5 conv on a 1x1 image)."""
    from edgert.tensors import DYNAMIC_DIM

    sig = t.shapeSignature
    if sig is None:
        return
    t.shape = [DYNAMIC_DIM if k > 0 and d == -1 else s for k, (d, s) in
               enumerate(zip(sig, t.shape))]
