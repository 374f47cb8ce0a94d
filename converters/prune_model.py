"""``prune_model``: what ``edgert prune`` does, as a function.

    run = prune_model("zoo:mobilenet_v2", pattern="1x4", sparsity=0.8, kinds=["conv1x1"],
                      out_dir="out", targets="mnn")
    run.table_path, run.pruned_path, run.layers.rows(), run.conversion.summary()

Element patterns (unstructured, blocks, n:m) zero weights by magnitude: a torch
model gets ``torch.nn.utils.prune`` masks (on a copy), an ONNX file new
initializer values. The ``channel`` pattern plans channel removal on the graph
(``converters.pruning``) with ``keep = 1 - sparsity`` per coupled layer group.
Either way the run writes the sparsity table and ``<name>.pruned.onnx`` (the
masked model for element patterns, the physically smaller one for channels),
and with ``targets`` converts through ``converters.convert`` with the table,
verified against the masked source, under the name ``<name>.pruned``
(``<name>.pruned.mnn``, ``<name>.pruned.tflite``, ``<name>.pruned.report.json``),
so pruned and unpruned conversions can share an output folder. With
``overwrite=False`` every one of these files that exists is refused before any
pruning; each is staged and moved into place when complete (``edgert.outputs``).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from edgert.errors import InputError

Targets = Union[float, Mapping[str, float]]


@dataclass
class PruneRun:
    name: str
    pattern: str
    table: Any
    table_path: str
    pruned_path: str
    source_kind: str                                  # "torch" or "onnx"
    layers: Any = None                                # magnitude.PruneResult (element patterns)
    channels: Any = None                              # pruning.ChannelPruneReport (channel)
    conversion: Any = None                            # converters.api.ConversionReport
    notes: list = field(default_factory=list)
    _convert_source: Any = field(default=None, repr=False)   # what convert() is given

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "pattern": self.pattern, "table": self.table_path,
                "pruned_onnx": self.pruned_path, "source": self.source_kind,
                "layers": self.layers.to_dict() if self.layers is not None else None,
                "channels": self.channels.to_dict() if self.channels is not None else None,
                "conversion": self.conversion.to_dict() if self.conversion is not None else None,
                "notes": list(self.notes)}


def _resolve(model: Any) -> Any:
    from converters.frontends import spec as spec_mod

    if isinstance(model, (str, os.PathLike)) and spec_mod.is_spec(os.fspath(model)):
        return spec_mod.resolve_spec(os.fspath(model))
    return model


def _torch_parts(obj: Any):
    """(module, example_inputs or None, zoo model or None) for torch-like sources."""
    from converters.frontends import _is_torch_module

    if hasattr(obj, "module") and hasattr(obj, "example_inputs"):
        return obj.module, obj.example_inputs, obj
    if isinstance(obj, tuple) and len(obj) == 2 and _is_torch_module(obj[0]):
        return obj[0], obj[1], None
    if _is_torch_module(obj):
        return obj, None, None
    return None, None, None


def _with_module(obj: Any, module: Any) -> Any:
    from dataclasses import replace

    if hasattr(obj, "module") and hasattr(obj, "example_inputs"):
        return replace(obj, module=module)
    if isinstance(obj, tuple):
        return (module, obj[1])
    return module


def _keep(sparsity: Targets) -> Targets:
    if isinstance(sparsity, Mapping):
        return {k: 1.0 - float(v) for k, v in sparsity.items()}
    return 1.0 - float(sparsity)


def prune_model(model: Any, pattern: str = "unstructured", sparsity: Targets = 0.5, *,
                scope: str = "layer", kinds: Sequence[str] = ("conv1x1", "conv", "fc"),
                include: Optional[str] = None, exclude: Optional[str] = None,
                min_params: int = 0, out_dir: Union[str, os.PathLike] = "edgert_out",
                name: Optional[str] = None, targets: Any = None,
                input_shapes: Optional[Mapping[str, Sequence]] = None,
                example_inputs: Any = None, convert_options: Optional[Dict[str, Any]] = None,
                overwrite: bool = True, on_pruned: Optional[Callable[[], None]] = None
                ) -> PruneRun:
    """Prune ``model`` (ONNX path, zoo spec, nn.Module, ZooModel, file.py:ATTR) and
    optionally convert it. ``sparsity`` is the fraction to remove (channels: of each
    coupled layer group), one number or {layer name or regex: fraction}.
    ``on_pruned()`` is called when the pruned files are written, before converting
    (with ``convert_options={"on_stage": ...}``: a progress display's two halves)."""
    from quant_tables.producers.magnitude import PatternSpec

    convert_kwargs = _convert_kwargs(convert_options, targets)
    spec = PatternSpec.parse(pattern)
    obj = _resolve(model)
    from converters.frontends import default_name
    from edgert.outputs import OutputFolder

    name = default_name(obj, name)
    out = OutputFolder(out_dir, overwrite=overwrite)
    out.refuse_existing(planned_files(name, targets, convert_kwargs.get("precision", "auto")))
    from converters.frontends.torch_export import train_modes_kept

    with train_modes_kept(obj):
        try:
            run = _prune(obj, example_inputs, spec, sparsity, scope, kinds, include,
                         exclude, min_params, out, name, input_shapes)
        finally:
            out.close()
        if on_pruned is not None:
            on_pruned()
        if targets:
            from converters.api import convert

            convert_kwargs.setdefault("overwrite", overwrite)
            run.conversion = convert(run._convert_source, targets=targets, out_dir=out.path,
                                     name=f"{run.name}.pruned", sparsity_table=run.table,
                                     **convert_kwargs)
    return run


def planned_files(name: str, targets: Any, precision: Any) -> List[str]:
    """The files ``prune_model`` writes (the conversion's at the precision asked;
    the conversion checks its own again once its precision is known)."""
    from converters.backends import get_backend
    from converters.flow.context import precision_list, target_list
    from converters.flow.stages import target_file

    names = [f"{name}.sparsity.json", f"{name}.pruned.onnx"]
    if targets:
        base = f"{name}.pruned"
        names += [f"{base}.optimized.onnx", f"{base}.report.json"]
        for p in precision_list(precision):
            names += [target_file(base, "fp32" if p == "auto" else p, t, get_backend(t))
                      for t in target_list(targets)]
    return names


def _prune(obj, example_inputs, spec, sparsity, scope, kinds, include, exclude, min_params,
           out, name, input_shapes) -> PruneRun:
    module, example, _ = _torch_parts(obj)
    example = example_inputs if example_inputs is not None else example
    if module is not None:
        run = _prune_torch(obj, module, example, spec, sparsity, scope, kinds, include, exclude,
                           min_params, out, name, input_shapes)
    else:
        run = _prune_onnx(obj, spec, sparsity, scope, kinds, include, exclude, min_params, out,
                          name, input_shapes)
    return run


# convert()'s arguments that prune_model itself sets
_SET_HERE = ("model_or_path", "targets", "out_dir", "name", "sparsity_table")


def _convert_kwargs(convert_options: Optional[Mapping[str, Any]], targets: Any
                    ) -> Dict[str, Any]:
    """``convert_options`` checked before any pruning: names ``convert`` takes (and this
    function does not set), backend options resolved for ``targets``."""
    import inspect

    from converters.api import convert
    from converters.options import suggest

    options = dict(convert_options or {})
    accepted = [p for p in inspect.signature(convert).parameters if p not in _SET_HERE]
    for key in options:
        if key in _SET_HERE:
            raise InputError(f"convert option {key!r} is set by prune_model itself")
        if key not in accepted:
            raise InputError(f"unknown convert option {key!r}{suggest(key, accepted)}; "
                             f"accepted: {', '.join(accepted)}")
    if targets and options.get("backend_options") is not None:
        from converters.backends import resolve_target_options
        from converters.flow.context import target_list

        options["backend_options"] = resolve_target_options(options["backend_options"],
                                                            target_list(targets))
    options.setdefault("raise_on_error", False)
    return options


def _prune_torch(obj, module, example, spec, sparsity, scope, kinds, include, exclude,
                 min_params, out, name, input_shapes) -> PruneRun:
    from converters.frontends import load_source
    from quant_tables.producers.sparsity_torch import bake_masks, prune_torch

    if spec.pattern == "channel":
        src = load_source(obj, example, input_shapes, name=name)
        return _channel_run(src, spec, sparsity, out, "torch")
    pruned = copy.deepcopy(module)
    table, result = prune_torch(pruned, spec, sparsity, scope, kinds, include, exclude,
                                min_params, source=name or type(module).__name__)
    src = load_source(bake_masks(_with_module(obj, pruned)), example, input_shapes, name=name)
    run = _finish(src.name, spec, table, out, src.model, "torch", layers=result)
    run._convert_source = src
    return run


def _prune_onnx(obj, spec, sparsity, scope, kinds, include, exclude, min_params, out,
                name, input_shapes) -> PruneRun:
    import onnx_ir as ir

    from converters.frontends import load_source
    from quant_tables.producers.sparsity_onnx import prune_onnx

    src = load_source(obj, None, input_shapes, name=name)
    if spec.pattern == "channel":
        return _channel_run(src, spec, sparsity, out, "onnx")
    proto, table, result = prune_onnx(src.model, spec, sparsity, scope, kinds, include,
                                      exclude, min_params)
    model = ir.serde.deserialize_model(proto)
    run = _finish(src.name, spec, table, out, model, "onnx", layers=result)
    run._convert_source = run.pruned_path
    return run


def _channel_run(src, spec, sparsity, out, kind: str) -> PruneRun:
    from converters.pruning import prune_channels

    if isinstance(sparsity, Mapping) and any(not 0 <= float(v) < 1 for v in sparsity.values()):
        raise InputError("channel sparsity must be a fraction in [0, 1)")
    model = src.model.clone()
    report = prune_channels(model, keep=_keep(sparsity))   # planned here: its reasons kept
    table = report.table
    table.provenance.source = src.name
    run = _finish(src.name, spec, table, out, model, kind, channels=report)
    run._convert_source = src
    return run


def _finish(name: str, spec, table, out, model, kind: str, **reports) -> PruneRun:
    from converters.onnx_io import save_onnx

    with out.writing(f"{name}.sparsity.json") as staged:
        table.save(staged)
    with out.writing(f"{name}.pruned.onnx") as staged:
        save_onnx(model, staged)
    table_path, pruned_path = out.final(f"{name}.sparsity.json"), out.final(f"{name}.pruned.onnx")
    run = PruneRun(name=name, pattern=spec.label, table=table, table_path=str(table_path),
                   pruned_path=str(pruned_path), source_kind=kind, **reports)
    skipped = getattr(run.layers, "skipped", None)
    if skipped:
        run.notes.append(f"{len(skipped)} weight(s) left dense: " + "; ".join(
            f"{n} ({why})" for n, why in skipped))
    return run
