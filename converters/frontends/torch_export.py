"""PyTorch front-end: ``nn.Module`` + example inputs -> ONNX (an onnx_ir.Model).

Exporter choice (measured on the zoo, torch 2.13, see docs/CONVERTERS.md):
both exporters export all eleven zoo models correctly (max error vs eager
below 2e-3 on outputs with std up to 40). The TorchScript exporter
(``dynamo=False``) is 5-15x faster (0.03-0.6 s vs 1.2-6 s per model) but is
deprecated since torch 2.9 and slated for removal, and emits Constant-heavy
graphs with BatchNorm already folded by torch, hiding that work from our
passes. The dynamo exporter (``torch.export``) is torch's maintained default,
yields cleaner opset-18+ graphs (LayerNormalization, Gelu as single ops) and
hands back an onnx_ir.Model directly. So: **dynamo by default**, with
``optimize=False`` because our pass pipeline does that work and reports it;
``exporter="torchscript"`` on request; and when torch.export cannot capture a
model (data-dependent Python control flow), we fall back to TorchScript and
say so in the notes.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import re
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgert.errors import InputError
from converters.errors import ConversionError

EXPORTERS = ("dynamo", "torchscript")
TORCHSCRIPT_OPSET = 18  # dynamo picks its own default (18+); MNN reads both


def forward_parameters(module) -> List[str]:
    """Names of ``forward``'s positional parameters (those without defaults first)."""
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is not None:   # a TorchScript method: no Python signature, a schema instead
        return [a.name for a in schema.arguments[1:]
                if not a.kwarg_only and a.default_value is None]
    try:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty] or [p.name for p in params]


def forward_input_names(module, n: int) -> List[str]:
    """Names of ``forward``'s first ``n`` positional parameters, else input_0..."""
    names = forward_parameters(module)[:n]
    if len(names) != n:
        names = ["input"] if n == 1 else [f"input_{i}" for i in range(n)]
    return names


@contextlib.contextmanager
def train_modes_kept(obj: Any):
    """Restore the train/eval flag of every submodule of ``obj`` (an nn.Module, or an
    object holding one as ``.module``) when the block ends: exporting puts the model in
    eval mode, and a user converting a checkpoint in the middle of training must get it
    back as it was (BatchNorm updating its statistics, Dropout dropping). Anything else
    passes through."""
    module = obj if hasattr(obj, "training") and hasattr(obj, "modules") else \
        getattr(obj, "module", None)
    modes = []
    if module is not None and hasattr(module, "training") and hasattr(module, "modules"):
        try:
            modes = [(m, m.training) for m in module.modules()]
        except Exception:      # noqa: BLE001 - not a torch module after all: nothing to keep
            modes = []
    try:
        yield
    finally:
        for m, training in modes:      # each module's own flag (train() would recurse)
            m.training = training


def as_tensors(example_inputs) -> Tuple:
    import torch

    if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
        example_inputs = (example_inputs,)
    out = []
    for x in example_inputs:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            hint = (": forward() takes a nested structure here; wrap the model in a module "
                    "whose forward takes the tensors one by one" if isinstance(
                        x, (tuple, list, dict)) else "")
            raise InputError(f"example inputs must be tensors or arrays, got "
                             f"{type(x).__name__}{hint}")
        out.append(x)
    return tuple(out)


def flatten_outputs(out) -> List[Any]:
    """A module's outputs as a flat list (tuple, list, dict values or one tensor)."""
    if isinstance(out, dict):
        return [v for o in out.values() for v in flatten_outputs(o)]
    if isinstance(out, (list, tuple)):
        return [v for o in out for v in flatten_outputs(o)]
    return [out]


def output_names_of(out) -> Optional[List[str]]:
    """Names for a module's flattened outputs from the dict keys and namedtuple fields it
    returns (``{"logits": y, "probs": p}`` -> logits, probs; nested parts joined by
    ``_``), in ``flatten_outputs``'s order; None when the outputs carry no names."""
    names: List[str] = []
    named = False

    def walk(o, prefix: str) -> None:
        nonlocal named
        if isinstance(o, dict):
            named = True
            for k, v in o.items():
                walk(v, f"{prefix}_{k}" if prefix else str(k))
        elif isinstance(o, tuple) and hasattr(o, "_fields"):
            named = True
            for k, v in zip(o._fields, o):
                walk(v, f"{prefix}_{k}" if prefix else str(k))
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(v, f"{prefix}_{i}" if prefix else f"output_{i}")
        else:
            names.append(prefix or "output")

    walk(out, "")
    if not named or len(set(names)) != len(names):
        return None
    return names


def run_module(module, inputs: Sequence) -> List[np.ndarray]:
    return run_module_named(module, inputs)[0]


def run_module_named(module, inputs: Sequence) -> Tuple[List[np.ndarray], Optional[List[str]]]:
    """The module's flattened outputs, and their names when it returns a dict or a
    namedtuple (``output_names_of``)."""
    import torch

    with torch.no_grad():
        out = module(*inputs)
    return [t.detach().cpu().numpy() for t in flatten_outputs(out)], output_names_of(out)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters warn and log at length on success; keep the console for our report."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                               "torch.fx.experimental.symbolic_shapes",
                                               "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def exporter_reason(exc: BaseException) -> str:
    """The line of a torch.onnx failure that says what failed: its "## Exception summary"
    when it has one (the first line is "Failed to export the model with torch.export.",
    the same for every cause), else its first line; without terminal colour codes."""
    text = _ANSI.sub("", str(exc)).strip()
    if not text:
        return repr(exc)
    lines = text.splitlines()
    if "## Exception summary" in lines:
        after = [ln.strip() for ln in lines[lines.index("## Exception summary") + 1:]
                 if ln.strip()]
        if after:
            return re.sub(r"^<class '([\w.]+)'>", lambda m: m.group(1).rsplit(".", 1)[-1],
                          after[0])[:300]
    return lines[0][:300]


def export_torch(module, example_inputs: Tuple, input_names: List[str],
                 output_names: List[str], dynamic_axes: Optional[Dict[str, Dict[int, str]]],
                 exporter: str = "dynamo", opset: Optional[int] = None):
    """Export to an onnx_ir.Model. Returns (model, exporter used, notes, seconds)."""
    if exporter not in EXPORTERS:
        raise ConversionError(f"unknown exporter {exporter!r}; exporters: {', '.join(EXPORTERS)}")
    notes: List[str] = []
    t0 = time.perf_counter()
    if exporter == "dynamo":
        try:
            model = _export_dynamo(module, example_inputs, input_names, output_names,
                                   dynamic_axes, opset)
            own_outputs(model, input_names, output_names)
            return model, "dynamo", notes, time.perf_counter() - t0
        except Exception as exc:  # torch.export raises many types; fall back, say why
            notes.append(f"dynamo exporter failed ({type(exc).__name__}: "
                         f"{exporter_reason(exc)}); used the TorchScript exporter instead")
    model = _export_torchscript(module, example_inputs, input_names, output_names,
                                dynamic_axes, opset)
    own_outputs(model, input_names, output_names)
    return model, "torchscript", notes, time.perf_counter() - t0


def own_outputs(model, input_names: List[str], output_names: List[str]) -> None:
    """Every graph output its own value, under its own name, and the inputs under theirs.

    A module that returns its input (``return x, conv(x)``) or one tensor twice
    (``return y, y``) gives the exporter one value for two names: the dynamo exporter
    renamed the input ``x`` to ``output_0`` (the reference then found no feed for it: a
    KeyError), and named a repeated output twice, so the optimized graph had one output
    where the module has two. An Identity gives such an output a value of its own (the
    backends keep a graph output's Identity)."""
    import onnx_ir as ir

    graph = model.graph
    inputs = list(graph.inputs)
    if len(inputs) == len(input_names):
        for v, name in zip(inputs, input_names):
            v.name = name
    if len(graph.outputs) != len(output_names):
        return
    seen = set()
    for i, (value, name) in enumerate(zip(list(graph.outputs), output_names)):
        shared = value in inputs or value.is_initializer() or id(value) in seen
        seen.add(id(value))
        if not shared:
            value.name = name
            continue
        if value.name == name and value not in inputs:   # an initializer the exporter
            value.name = f"{name}_value"                  # named after the output
        node = ir.node("Identity", [value], outputs=[ir.Value(name=name, shape=value.shape,
                                                             type=value.type)])
        graph.append(node)
        graph.outputs[i] = node.outputs[0]


def _export_dynamo(module, example_inputs, input_names, output_names, dynamic_axes, opset):
    import torch

    with _quiet_exporter():
        program = torch.onnx.export(
            module, example_inputs, input_names=input_names, output_names=output_names,
            dynamic_axes=dynamic_axes, opset_version=opset, dynamo=True,
            optimize=False, verbose=False)
    return program.model


def _export_torchscript(module, example_inputs, input_names, output_names, dynamic_axes,
                        opset):
    import onnx
    import onnx_ir as ir
    import torch

    from edgert.native_output import capture_native_output

    buf = io.BytesIO()
    try:
        # fd 1 too: on a failure torch's C++ log prints the whole TorchScript graph there
        # (its ONNX log is always on: setup_onnx_logging tests the function, not its
        # result), hundreds of lines that corrupt --json output
        with _quiet_exporter(), capture_native_output(stderr=False):
            torch.onnx.export(module, example_inputs, buf, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes,
                              opset_version=opset or TORCHSCRIPT_OPSET, dynamo=False)
    except Exception as exc:
        raise ConversionError(f"torch.onnx.export failed: {type(exc).__name__}: "
                              f"{torchscript_reason(exc)}") from exc
    return ir.serde.deserialize_model(onnx.load_from_string(buf.getvalue()))


def torchscript_reason(exc: BaseException) -> str:
    """The TorchScript exporter's message without the graph dump it appends (hundreds of
    lines of IR), and what to do when the op it could not export is a fake-quant (a QAT
    model compiled to TorchScript: its fake-quant modules are ops now, not modules
    edgert can read as a table)."""
    text = _ANSI.sub("", str(exc)).split("Torch IR graph at exception")[0].strip()
    text = text or repr(exc)
    if "fake_quant" in text:
        text += (" (a QAT model compiled to TorchScript: its fake-quant modules are graph ops "
                 "now. Pass the QAT model itself, an nn.Module or a file.py:ATTR spec: edgert "
                 "reads its fake-quant modules as the quantization table)")
    return text
