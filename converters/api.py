"""``convert``: front-end, passes, every target, verification, report.

    from converters import convert
    report = convert(module, targets=("mnn", "tflite"), example_inputs=(x,), out_dir="out")
    print(report.summary())

Writes into ``out_dir``: ``<name>.optimized.onnx`` (the graph every backend
was given), one file per target and precision (``<name>.mnn``, ``<name>.tflite``
at fp32, ``<name>.<precision>.mnn`` for other precisions) and
``<name>.report.json``, each staged and moved into place when complete.

Targets go through ``converters.backends.get_backend``, so a backend that
registers itself (as converters/tflite/backend.py does for "tflite") works here
with no change. Each backend gets its own copy of the optimized graph (a
backend may rewrite it, e.g. for layout). A target that fails does not stop the
others; after all ran and the report is written, the first failure is raised
(``raise_on_error=False`` returns the report instead; ``report.ok`` tells).

The flow itself is a declared list of stages over a typed context
(``converters.flow``: recognize, export, prune, passes, sparsity, save, quantize,
reference, convert, verify, write); this module is its entry.
"""
from __future__ import annotations

import os
import time
from typing import Any, Mapping, Optional, Sequence, Union

from converters.flow.report import ConversionReport, TargetReport

__all__ = ["convert", "ConversionReport", "TargetReport"]


def convert(model_or_path: Any, targets: Union[str, Sequence[str]] = ("mnn",), *,
            example_inputs: Any = None, out_dir: Union[str, "os.PathLike[str]"] = "edgert_out",
            name: Optional[str] = None, precision: Union[str, Sequence[str]] = "auto",
            input_shapes: Optional[Mapping[str, Sequence]] = None, dynamic_batch: bool = False,
            input_values: Optional[Mapping[str, Any]] = None,
            quant_table: Any = None, sparsity_table: Any = None,
            calibration_data: Any = None, verify: bool = True,
            thresholds: Optional[Mapping[str, float]] = None, verify_inputs: Any = None,
            verify_seed: int = 0, verify_sets: int = 3, verify_timeout: Optional[float] = None,
            passes: Optional[Sequence] = None, exporter: str = "dynamo",
            opset: Optional[int] = None, io_layout: str = "source", io_dtype: str = "float",
            weight_block_size: int = 0, backend_options: Any = None,
            load_check: str = "structure", threads: Optional[int] = None,
            overwrite: bool = True, calibration_method: str = "minmax",
            on_stage: Any = None, raise_on_error: bool = True) -> ConversionReport:
    """Convert a model to every target in ``targets`` and verify each result.

    Args:
        model_or_path: an ``nn.Module``, a ``zoo.ZooModel``, an ONNX path, ModelProto or
            onnx_ir.Model, or a spec (``zoo:resnet18``, ``file.py:factory``, ``pkg.mod:attr``).
        targets: target names ("mnn", "tflite") or "mnn,tflite".
        example_inputs: inputs to trace a torch model with (tensors or arrays).
        precision: "auto" (default: int8 for a source carrying its own quantization, a QDQ
            ONNX file, a QAT or PT2E model, or when a quant table or calibration data is
            given; fp32 otherwise; the report says which and why), "fp32", "fp16",
            "int8_weights", "int4_weights" or "int8"; or several (``["fp32", "fp16",
            "int8"]`` or ``"fp32,fp16,int8"``): the source is exported, pruned and
            optimized once, each precision converted and verified, and one report holds
            every variant. Files: ``<name>.mnn`` at fp32, ``<name>.<precision>.mnn``
            otherwise, so variants never share a name.
        input_shapes: {input name: shape}; fixes dynamic dims (also those a file declares
            as -1), or makes example inputs for a torch model when ``example_inputs`` is
            None.
        input_values: {input name: value} for inputs that are settings, not data (a sample
            rate, a state): a number, an array or a .npy path. The export's example inputs,
            every verification set and every calibration feed use them.
        dynamic_batch: export / mark dim 0 of every input as dynamic.
        quant_table, sparsity_table: quant_tables objects (or table paths) for the backends;
            a sparsity table's ``channel`` entries are removed from the graph first
            (``converters.sparsity``), the rest become sparse weights where a kernel runs them.
            With precision="int8" the table is completed against the optimized graph
            (``converters.quantize.prepare_int8``); a QAT model (torch.ao fake-quant
            modules) brings its own table.
        calibration_data: arrays to calibrate int8 tensors a table lacks (or a whole table
            when there is none): a dict, one array, a .npy/.npz path or a directory.
        verify: run source and result on the same inputs and compare.
        thresholds: overrides of the precision's thresholds (``converters.verify.Thresholds``
            fields, e.g. {"min_cosine": 0.9999}).
        verify_inputs: a dict of arrays, one array, or a .npy/.npz path: verified on besides
            the torch example inputs and ``verify_sets`` seeded input sets (``verify_seed``,
            +1, ...; for int8 with calibration data: held-out calibration samples instead).
        verify_timeout: seconds one converted model may take to load and run every input set
            in the verification child (default: 10 s + 0.5 s per MB per set, at most 60 s).
        passes: pass names to run instead of the full pipeline ([] for none).
        exporter: "dynamo" (default) or "torchscript" for torch models.
        backend_options: each target's own knobs, checked before any work (a misspelt or
            wrongly typed option is an InputError naming it and the accepted ones): the
            dataclasses (``converters.mnn.options.MnnOptions``,
            ``converters.tflite.options.TfliteOptions``) or a list of them, or a dict
            keyed by target (``{"mnn": {"mnn_args": [...]}}``) and/or by option name
            (``{"tflite_sparse_hybrid": True}``: a name must belong to one of the targets
            converted). See ``converters.backends.resolve_target_options``.
        load_check: kept for callers of earlier versions: verification always loads and runs
            each result in a child process (``converters.flow.isolation``), which is the crash
            check, so "isolated" and "structure" behave the same.
        overwrite: replace files of the same names in ``out_dir`` (default, as before);
            ``False`` refuses before any work, naming them (the CLI's default: it asks
            for ``--overwrite``). Either way each file is written under a staging name
            and moved into place when complete (``edgert.outputs``).
        calibration_method: how tensors are calibrated from ``calibration_data``:
            "minmax" (default), "percentile" or "entropy" (as ``edgert calibrate``).
        on_stage: called as ``on_stage(stage, variant, seconds)`` when a stage starts
            (``seconds`` None) and ends; ``variant`` is the precision when several
            were asked, else None (the CLI's progress display).
        raise_on_error: raise the first target failure after writing the report.
    """
    started = time.perf_counter()
    from converters.flow.stages import run_stages   # first: it imports what the flow needs
    from converters.flow.context import make_request, made

    ctx = make_request(
        model_or_path, targets, out_dir=out_dir, precision=precision, io_layout=io_layout,
        io_dtype=io_dtype, weight_block_size=weight_block_size,
        backend_options=backend_options, sparsity_table=sparsity_table, name=name,
        example_inputs=example_inputs, input_shapes=input_shapes, input_values=input_values,
        dynamic_batch=dynamic_batch, exporter=exporter, opset=opset, passes=passes,
        quant_table=quant_table, calibration_data=calibration_data, verify=verify,
        thresholds=thresholds, verify_inputs=verify_inputs, verify_seed=verify_seed,
        verify_sets=verify_sets, verify_timeout=verify_timeout, load_check=load_check,
        threads=threads, overwrite=overwrite, calibration_method=calibration_method,
        on_stage=on_stage)
    ctx.started = started
    from converters.flow.heap import older_objects_frozen
    from converters.frontends.torch_export import train_modes_kept

    try:
        with train_modes_kept(model_or_path), older_objects_frozen():
            report = made(run_stages(ctx).report, "report")
    finally:
        if ctx.outputs is not None:
            ctx.outputs.close()
    if raise_on_error:
        for rep in report.targets:
            if rep._exception is not None:
                rep._exception.report = report   # type: ignore[attr-defined]  # the caller's way to the rest
                raise rep._exception
    return report
