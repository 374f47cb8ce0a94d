"""Front-ends: whatever the user hands us becomes one ``SourceModel``, an ONNX
graph (onnx_ir) plus what is needed to run the source for verification.

    src = load_source(torch_module, example_inputs=(x,))
    src = load_source("model.onnx", input_shapes={"input": (1, 3, 224, 224)})
    src = load_source("zoo:resnet18@96")

Accepted: an ``nn.Module`` (needs example inputs, or ``input_shapes`` to make
seeded random ones), a ``converters.zoo.ZooModel``, an ONNX path (external
data next to it is loaded), an ``onnx.ModelProto``, an ``onnx_ir.Model``, or a
spec string (see ``converters.frontends.spec``), or a SourceModel from an earlier
call (so one export serves several conversions; ``convert`` never changes it).

Before export, ``convert`` recognizes what it was handed in one place
(``converters.frontends.recognize``): a spec resolved, a QAT/PT2E model or a QDQ
ONNX model split into its float model plus the quantization it carried
(``quantized.py``), pruning masks baked into a copy.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from converters.frontends.shapes import (check_known, concrete, normalize_input_shapes,
                                         parse_input_shapes, parse_shape)
from converters.frontends.values import fit_values, normalize_values
from edgert.errors import EdgertError, InputError
from converters.errors import ConversionError

__all__ = ["SourceModel", "load_source", "parse_input_shapes", "parse_shape"]


@dataclass
class SourceModel:
    """The front-end's result: the ONNX graph and a way to run the original."""

    name: str
    model: Any                                   # onnx_ir.Model, before any pass
    kind: str                                    # "torch" or "onnx"
    torch_module: Any = None
    example_inputs: Optional[Dict[str, np.ndarray]] = None
    source_path: Optional[str] = None
    exporter: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0
    input_values: Dict[str, np.ndarray] = field(default_factory=dict)   # fixed by the user
    _ort: Any = field(default=None, repr=False)
    # the model object that is ``source_path``'s graph as written (None: changed or not a file)
    file_model: Any = field(default=None, repr=False)

    @property
    def input_names(self) -> List[str]:
        return [v.name for v in self.model.graph.inputs if not v.is_initializer()]

    @property
    def output_names(self) -> List[str]:
        return [v.name for v in self.model.graph.outputs]

    def input_specs(self) -> List[tuple]:
        """(name, shape with str/None for dynamic dims, numpy dtype) per input."""
        specs = []
        for v in self.model.graph.inputs:
            if v.is_initializer():
                continue
            shape = tuple(d if isinstance(d, int) else (getattr(d, "value", None) or None)
                          for d in (v.shape or ()))
            dtype = np.dtype(v.dtype.numpy()) if v.dtype is not None else np.dtype(np.float32)
            specs.append((v.name, shape, dtype))
        return specs

    def run_reference(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Outputs of the source itself: the torch module, or ONNX Runtime on the
        source ONNX as it was given (before any pass)."""
        names = self.output_names
        try:
            if self.torch_module is not None:
                from converters.frontends.torch_export import run_module, train_modes_kept

                with train_modes_kept(self.torch_module):   # inference, whatever the
                    _eval(self.torch_module)               # caller did to it since
                    outs = run_module(self.torch_module,
                                      [_to_tensor(feeds[n]) for n in self.input_names])
            else:
                outs = self._ort_session().run(None, {n: feeds[n] for n in self.input_names})
        except EdgertError:
            raise
        except Exception as exc:   # the source itself cannot run these inputs
            shapes = ", ".join(f"{n} {'x'.join(map(str, np.shape(feeds[n])))}"
                               for n in self.input_names)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"the source model fails on the verification inputs ({shapes}): {first[:400]}. "
                f"A model exported with dynamic dims may only run at the sizes it was traced "
                f"with: give inputs that fit (--verify-inputs x.npz) or fix the dims "
                f"(--input-shape NAME=1x3x224x224)") from exc
        if len(outs) != len(names):
            raise ConversionError(f"the source gave {len(outs)} outputs, the graph has "
                                  f"{len(names)} ({names})")
        return dict(zip(names, outs))

    def _reference_source(self):
        """ONNX Runtime runs the source from memory (external data already loaded:
        ORT cannot shape-infer through small external tensors), or from the file
        when the model is over protobuf's 2 GB."""
        import onnx_ir as ir

        if self.source_path is not None and self.model is self.file_model:
            return self.source_path     # ResNet-18: no 0.4 s serialization of 46 MB
        proto = ir.serde.serialize_model(self.model)
        if proto.ByteSize() < 2 ** 31 - 1:
            return proto.SerializeToString()
        if self.source_path is None:
            raise ConversionError("a model over 2 GB must be given as a file path")
        return self.source_path

    def _ort_session(self):
        if self._ort is None:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.log_severity_level = 4   # failures are raised, with their message
            # basic graph rewrites only (constant folding, exact fusions): the reference is
            # the graph as written, and session creation takes a fifth of the time of
            # ORT_ENABLE_ALL's layout transforms (ResNet-18: 0.06 s instead of 0.32 s)
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            # its threads sleep when idle instead of spinning: the reference runs while
            # the targets convert (MNN's converter child, the TFLite writer), and spinning
            # threads would take their cores
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._ort = ort.InferenceSession(self._reference_source(), so,
                                             providers=["CPUExecutionProvider"])
        return self._ort


def _to_tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_source(model_or_path: Any, example_inputs: Any = None,
                input_shapes: Optional[Mapping[str, Sequence]] = None,
                dynamic_batch: bool = False, *, name: Optional[str] = None,
                input_names: Optional[List[str]] = None,
                output_names: Optional[List[str]] = None,
                exporter: str = "dynamo", opset: Optional[int] = None,
                seed: int = 0, input_values: Optional[Mapping[str, Any]] = None
                ) -> SourceModel:
    """Turn a torch model, a zoo model, an ONNX file/proto/IR or a spec into a SourceModel.

    ``input_values``: {input name: value} the user fixes (``--input sr=16000``): a torch
    model's example inputs take them, and verification and calibration use them
    (``converters.frontends.values``)."""
    src = _load_source(model_or_path, example_inputs, input_shapes, dynamic_batch, name,
                       input_names, output_names, exporter, opset, seed,
                       normalize_values(input_values))
    if input_values:
        src = replace(src, input_values=fit_values(normalize_values(input_values),
                                                   src.input_specs()))
    return src


def _load_source(model_or_path, example_inputs, input_shapes, dynamic_batch, name,
                 input_names, output_names, exporter, opset, seed, values) -> SourceModel:
    from converters.frontends import spec as spec_mod

    t0 = time.perf_counter()
    shapes = normalize_input_shapes(input_shapes)
    obj = model_or_path
    if isinstance(obj, SourceModel):      # reuse one export for several conversions
        if shapes or dynamic_batch or example_inputs is not None:
            raise InputError("a SourceModel is already exported: pass input shapes, dynamic "
                             "batch and example inputs to load_source, not again")
        if name and name != obj.name:
            obj = replace(obj, name=_safe(name))
        return obj
    if isinstance(obj, (str, os.PathLike)) and spec_mod.is_spec(os.fspath(obj)):
        obj, name = spec_mod.resolve_named(obj, name)
    if isinstance(obj, tuple) and len(obj) == 2:          # (module, example_inputs)
        obj, example_inputs = obj[0], example_inputs if example_inputs is not None else obj[1]
    from converters.zoo import ZooModel

    if isinstance(obj, ZooModel):
        return _from_torch(obj.module, example_inputs or obj.example_inputs, shapes,
                           dynamic_batch, name or obj.name, input_names or obj.input_names,
                           output_names or obj.output_names, obj.dynamic_axes, exporter,
                           opset, seed, t0, values)
    if _is_torch_module(obj):
        return _from_torch(obj, example_inputs, shapes, dynamic_batch,
                           name or _snake(type(obj).__name__), input_names, output_names,
                           None, exporter, opset, seed, t0, values)
    return _from_onnx(obj, shapes, dynamic_batch, name, t0)


def default_name(model: Any, name: Optional[str] = None) -> str:
    """The base name ``load_source`` gives the files of ``model`` when no name is given
    (known before the export, so the files can be checked first)."""
    if name:
        return _safe(name)
    if isinstance(model, SourceModel):
        return model.name
    if isinstance(model, tuple) and len(model) == 2:
        model = model[0]
    from converters.zoo import ZooModel

    if isinstance(model, ZooModel):
        return _safe(model.name)
    if isinstance(model, (str, os.PathLike)):
        return _safe(os.path.splitext(os.path.basename(os.fspath(model)))[0])
    if _is_torch_module(model):
        return _safe(_snake(type(model).__name__))
    graph = getattr(model, "graph", None)
    return _safe(getattr(graph, "name", "") or "model")


def _is_torch_module(obj) -> bool:
    mod = type(obj).__module__ or ""
    if not (mod.startswith("torch") or hasattr(obj, "forward")):
        return False
    try:
        import torch
    except ImportError:
        return False
    return isinstance(obj, torch.nn.Module)


def _from_onnx(obj, shapes, dynamic_batch, name, t0) -> SourceModel:
    import onnx_ir as ir

    from converters.frontends.onnx_load import load_onnx

    if not isinstance(obj, (str, os.PathLike, ir.Model)) and type(obj).__name__ != "ModelProto":
        raise ConversionError(f"cannot convert a {type(obj).__name__}: give an nn.Module with "
                              "example inputs, an ONNX file, a ModelProto or a zoo:NAME spec")
    model, path, notes, as_file = load_onnx(obj, shapes, dynamic_batch)
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0] if path else (model.graph.name or "model")
    return SourceModel(name=_safe(name), model=model, kind="onnx", source_path=path,
                       notes=notes, seconds=time.perf_counter() - t0,
                       file_model=model if as_file else None)


def _eval(module) -> None:
    try:
        module.eval()
    except NotImplementedError:   # the module of a torch.export program: already inference
        pass


def _from_torch(module, example_inputs, shapes, dynamic_batch, name, input_names,
                output_names, dynamic_axes, exporter, opset, seed, t0,
                values: Optional[Mapping[str, np.ndarray]] = None) -> SourceModel:
    from converters.frontends.torch_export import (as_tensors, export_torch,
                                                   forward_input_names, run_module_named)

    _eval(module)
    values = dict(values or {})
    if example_inputs is None:
        example_inputs = _inputs_from_shapes(module, shapes, input_names, seed, values)
    if isinstance(example_inputs, Mapping):        # {"input_ids": ..., "attention_mask": ...}
        example_inputs, input_names = _by_name(module, example_inputs, input_names)
    inputs = as_tensors(example_inputs)
    in_names = list(input_names or forward_input_names(module, len(inputs)))
    if len(in_names) != len(inputs):
        raise InputError(f"{len(inputs)} example inputs but {len(in_names)} input names "
                         f"({in_names})")
    if values:                                      # the user's values win over examples
        check_known(values, in_names, "input value")
        inputs = tuple(_to_tensor(values[n]) if n in values else t
                       for n, t in zip(in_names, inputs))
    if shapes:
        check_known(shapes, in_names)
        for n, t in zip(in_names, inputs):
            if n in shapes and tuple(concrete(shapes[n], t.shape[0])) != tuple(t.shape):
                raise InputError(f"input {n!r}: example input has shape {tuple(t.shape)}, "
                                 f"the given shape is {shapes[n]}")
    outs, named = run_module_named(module, inputs)
    if named and set(named) & set(in_names):       # an output may not share an input's name
        named = None
    out_names = list(output_names or named or (["output"] if len(outs) == 1
                                               else [f"output_{i}" for i in range(len(outs))]))
    if dynamic_batch:
        dynamic_axes = {n: {0: "batch"} for n in in_names + out_names}
    model, used, notes, secs = export_torch(module, inputs, in_names, out_names,
                                            dynamic_axes, exporter, opset)
    _check_exported(model, notes)
    feeds = {n: t.detach().cpu().numpy() for n, t in zip(in_names, inputs)}
    return SourceModel(name=_safe(name), model=model, kind="torch", torch_module=module,
                       example_inputs=feeds, exporter=used, notes=notes,
                       seconds=time.perf_counter() - t0)


def _by_name(module, named: Mapping, input_names):
    """Example inputs given by forward() parameter name, as positional inputs in forward's
    order (the names become the model's input names)."""
    from converters.frontends.torch_export import forward_parameters
    import inspect

    try:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    order = [p.name for p in params] or forward_parameters(module)
    unknown = [k for k in named if k not in order]
    if unknown:
        raise InputError(f"example inputs {unknown} are not parameters of forward(); it takes "
                         f"{order}")
    required = [p.name for p in params if p.default is p.empty]
    missing = [n for n in required if n not in named]
    if missing:
        raise InputError(f"example inputs lack forward() parameter(s) {missing}")
    last = max(order.index(k) for k in named)
    skipped = [n for n in order[:last] if n not in named]
    if skipped:
        raise InputError(f"example inputs skip forward() parameter(s) {skipped} before "
                         f"{order[last]!r}: give them too (positional export)")
    names = [n for n in order if n in named]
    return tuple(named[n] for n in names), list(input_names or names)


def _inputs_from_shapes(module, shapes, input_names, seed, values=None):
    import torch

    from converters.frontends.torch_export import forward_parameters

    values = values or {}
    if not shapes and not values:
        first = (list(input_names or []) + forward_parameters(module) + ["x"])[0]
        raise InputError(
            f"a torch model ({type(module).__name__}) needs example inputs to be exported: "
            f"pass example_inputs=(tensor, ...) or input_shapes={{'{first}': (1, 3, 224, 224)}} "
            f"(CLI: --input-shape {first}=1x3x224x224)")

    names = list(input_names or forward_parameters(module) or list(shapes) + list(values))
    check_known(shapes, names)
    check_known(values, names, "input value")
    missing = [n for n in names if n not in shapes and n not in values]
    if missing:
        raise InputError(f"no shape given for input(s) {missing}; forward() takes {names} "
                         f"(--input-shape NAME=1x3x224x224 for data, --input NAME=VALUE for "
                         f"a setting such as a sample rate)")
    gen = torch.Generator().manual_seed(seed)
    return tuple(_to_tensor(values[n]) if n in values else
                 torch.randn(concrete(shapes[n]), generator=gen) for n in names)


def _check_exported(model, notes: List[str]) -> None:
    import onnx
    import onnx_ir as ir

    try:
        onnx.checker.check_model(ir.serde.serialize_model(model))
    except onnx.checker.ValidationError as exc:
        notes.append(f"exported ONNX fails the checker: {str(exc).splitlines()[0]}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
