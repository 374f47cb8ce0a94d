"""``convert``: front-end, passes, every target, verification, report.

    from converters import convert
    report = convert(module, targets=("mnn", "tflite"), example_inputs=(x,), out_dir="out")
    print(report.summary())

Writes into ``out_dir``: ``<name>.optimized.onnx`` (the graph every backend
was given), one file per target (``<name>.mnn``, ``<name>.tflite``, or
``<name>.<precision>.mnn`` for other precisions) and ``<name>.report.json``.

Targets go through ``converters.backends.get_backend``, so a backend that
registers itself (as converters/tflite/backend.py does for "tflite") works here
with no change. Each backend gets its own copy of the optimized graph (a
backend may rewrite it, e.g. for layout). A target that fails does not stop the
others; after all ran and the report is written, the first failure is raised
(``raise_on_error=False`` returns the report instead; ``report.ok`` tells).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from converters.backends import PRECISIONS, BackendOptions, get_backend
from converters.onnx_io import save_onnx
from converters.verify import (DYNAMIC_DIM, TABLE_COLUMNS, Verification, compare, load_feeds,
                              random_feeds)
from edgert.errors import EdgertError, InputError
from converters.errors import ConversionError


@dataclass
class TargetReport:
    """One target's outcome: the file, what the backend said, the verification."""

    target: str
    precision: str
    path: Optional[str] = None
    size_bytes: int = 0
    op_counts: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)
    details: Dict[str, Any] = field(default_factory=dict)
    verification: Optional[Verification] = None
    error: Optional[str] = None
    error_type: Optional[str] = None
    _exception: Optional[BaseException] = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and (self.verification is None or self.verification.passed)

    def to_dict(self) -> dict:
        return {"target": self.target, "precision": self.precision, "path": self.path,
                "size_bytes": self.size_bytes, "op_counts": dict(self.op_counts),
                "seconds": round(self.seconds, 4), "notes": list(self.notes),
                "details": self.details, "ok": self.ok, "error": self.error,
                "error_type": self.error_type,
                "verification": self.verification.to_dict() if self.verification else None}


@dataclass
class ConversionReport:
    """Everything ``convert`` did, for people (``summary()``) and scripts (``to_dict()``)."""

    name: str
    out_dir: str
    source: Dict[str, Any]
    optimized_path: str
    optimized_size: int
    passes: Any                            # converters.passes.PassReport
    targets: List[TargetReport]
    seconds: float = 0.0
    report_path: Optional[str] = None
    pruning: Optional[Any] = None          # converters.pruning.ChannelPruneReport

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)

    def target(self, name: str) -> TargetReport:
        for t in self.targets:
            if t.target == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "out_dir": self.out_dir,
                "seconds": round(self.seconds, 3), "source": self.source,
                "optimized": {"path": self.optimized_path, "size_bytes": self.optimized_size},
                "passes": self.passes.to_dict(), "targets": [t.to_dict() for t in self.targets],
                "pruning": self.pruning.to_dict() if self.pruning is not None else None}

    def summary(self) -> str:
        """A plain-text summary: sizes, op counts, pass effects, verification table."""
        src = self.source
        lines = [f"{self.name}: {src['kind']} source"
                 + (f" ({src['exporter']} exporter)" if src.get("exporter") else "")
                 + f", converted in {self.seconds:.2f} s -> {self.out_dir}"]
        lines += [f"  note: {n}" for n in src.get("notes", [])]
        if self.pruning is not None:
            lines += ["  " + ln for ln in self.pruning.summary().splitlines()]
        lines.append(f"  optimized ONNX: {_size(self.optimized_size)}, "
                     f"{self.passes.nodes_before} -> {self.passes.nodes_after} nodes")
        lines.append(self.passes.summary())
        for t in self.targets:
            if t.error:
                lines.append(f"  {t.target} [{t.precision}]: FAILED: {t.error}")
                continue
            ops = ", ".join(f"{k} {v}" for k, v in sorted(t.op_counts.items(),
                                                          key=lambda kv: -kv[1])[:8])
            lines.append(f"  {t.target} [{t.precision}]: {t.path} ({_size(t.size_bytes)}, "
                         f"{t.seconds:.2f} s); ops: {ops}")
        rows = [r for t in self.targets if t.verification for r in t.verification.table_rows()]
        if rows:
            lines.append(_text_table(TABLE_COLUMNS, rows))
        lines.append("verification: " + ("PASSED" if self.ok else "FAILED"))
        return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _target_list(targets: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(targets, str):
        targets = [t for t in targets.split(",") if t.strip()]
    names = [t.strip().lower() for t in targets]
    if not names:
        raise ConversionError("no target given (e.g. targets=('mnn',))")
    return names


def convert(model_or_path: Any, targets: Union[str, Sequence[str]] = ("mnn",), *,
            example_inputs: Any = None, out_dir: Union[str, "os.PathLike[str]"] = "edgert_out",
            name: Optional[str] = None, precision: str = "fp32",
            input_shapes: Optional[Mapping[str, Sequence]] = None, dynamic_batch: bool = False,
            quant_table: Any = None, sparsity_table: Any = None,
            calibration_data: Any = None, verify: bool = True,
            thresholds: Optional[Mapping[str, float]] = None, verify_inputs: Any = None,
            verify_seed: int = 0, passes: Optional[Sequence] = None, exporter: str = "dynamo",
            opset: Optional[int] = None, io_layout: str = "source", io_dtype: str = "float",
            weight_block_size: int = 0, backend_options: Optional[Mapping[str, Any]] = None,
            load_check: str = "isolated", threads: Optional[int] = None,
            raise_on_error: bool = True) -> ConversionReport:
    """Convert a model to every target in ``targets`` and verify each result.

    Args:
        model_or_path: an ``nn.Module``, a ``zoo.ZooModel``, an ONNX path, ModelProto or
            onnx_ir.Model, or a spec (``zoo:resnet18``, ``file.py:factory``, ``pkg.mod:attr``).
        targets: target names ("mnn", "tflite") or "mnn,tflite".
        example_inputs: inputs to trace a torch model with (tensors or arrays).
        precision: "fp32", "fp16", "int8_weights", "int4_weights" or "int8".
        input_shapes: {input name: shape}; fixes dynamic dims, or makes example inputs for
            a torch model when ``example_inputs`` is None.
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
        verify_inputs: a dict of arrays, one array, or a .npy/.npz path; default: the torch
            example inputs, else seeded random inputs (``verify_seed``).
        passes: pass names to run instead of the full pipeline ([] for none).
        exporter: "dynamo" (default) or "torchscript" for torch models.
        backend_options: target-specific extras (``BackendOptions.extra``).
        load_check: how the runtime loads each result for verification ("isolated" loads it
            in a child process first, so a crash on a bad file cannot kill this process).
        raise_on_error: raise the first target failure after writing the report.
    """
    from converters.frontends import load_source
    from converters.passes import optimize
    from converters import sparsity as sparse_prep

    t0 = time.perf_counter()
    target_names = _target_list(targets)
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
    backends = {t: get_backend(t) for t in target_names}   # unknown targets fail here
    from converters.frontends.spec import resolve_named
    from converters.quantize import resolve_table, split_qat, split_qdq
    model_or_path, name = resolve_named(model_or_path, name)   # a spec may hold a QAT model
    model_or_path, qat = split_qat(model_or_path)   # a QAT/PT2E model converts as its float twin
    qdq = split_qdq(model_or_path)   # so does a QDQ ONNX model, its table from its Q/DQ pairs
    if qdq is not None:
        model_or_path, name = qdq.model, name or qdq.name
    sparsity_table = sparse_prep.load_sparsity_table(sparsity_table)
    model_or_path = sparse_prep.prepare_source(model_or_path, sparsity_table)
    src = load_source(model_or_path, example_inputs, input_shapes, dynamic_batch, name=name,
                      exporter=exporter, opset=opset, seed=verify_seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    model = src.model.clone()
    src, pruning = sparse_prep.apply_channel_pruning(src, model, sparsity_table)
    sparsity_table = sparse_prep.element_entries(sparsity_table)
    pass_report = optimize(model, passes)
    sparsity_table, renamed = sparse_prep.follow_renamed(sparsity_table, model, src.torch_module)
    src.notes.extend(renamed + sparse_prep.graph_name_notes(sparsity_table, model))
    optimized_path = out / f"{src.name}.optimized.onnx"
    save_onnx(model, optimized_path)
    if qdq is not None:
        src.notes.extend(qdq.notes)
        if precision == "int8":   # a table given as well wins where both have an entry
            user = resolve_table(quant_table)
            quant_table = qdq.table if user is None else user.merged(qdq.table)
        else:
            qdq_path = out / f"{src.name}.qdq.quant.json"
            qdq.table.save(qdq_path)
            src.notes.append(f"converted at {precision} as asked; the QDQ model's table is in "
                             f"{qdq_path}: precision 'int8' converts with it")
    if precision == "int8":
        quant_table = _int8_table(model, quant_table, calibration_data, qat, src, out)

    feeds, feeds_desc = _verification_feeds(src, verify_inputs, verify_seed) if verify else \
        (None, "")
    reference = src.run_reference(feeds) if verify else None
    if verify and precision == "int8" and qdq is not None:
        reference = _simulation_reference(
            qdq.simulate(feeds, src.output_names), reference, src,
            "the QDQ model's own int8 simulation on ONNX Runtime")
    elif verify and precision == "int8" and qat is not None:
        reference = _simulation_reference(
            _torch_simulation(qat, feeds, src), reference, src,
            f"PyTorch's own simulation of the {trained_kind(qat)} model")

    options = BackendOptions(precision=precision, quant_table=quant_table,
                             sparsity_table=sparsity_table, io_layout=io_layout,
                             io_dtype=io_dtype, weight_block_size=weight_block_size,
                             extra=dict(backend_options or {}))
    reports = []
    for tname, backend in backends.items():
        suffix = "" if precision == "fp32" else f".{precision}"
        path = out / f"{src.name}{suffix}{backend.extension or '.' + tname}"
        rep = _run_target(backend, tname, model, path, options)
        if verify and rep.error is None:
            _verify_target(rep, feeds, reference, feeds_desc, thresholds, load_check, threads)
        reports.append(rep)

    report = ConversionReport(
        name=src.name, out_dir=str(out), source=_source_dict(src),
        optimized_path=str(optimized_path), optimized_size=optimized_path.stat().st_size,
        passes=pass_report, targets=reports, seconds=time.perf_counter() - t0, pruning=pruning)
    report.report_path = str(out / f"{src.name}.report.json")
    _write_json(report)
    if raise_on_error:
        for rep in reports:
            if rep._exception is not None:
                rep._exception.report = report  # type: ignore[attr-defined]
                raise rep._exception
    return report


def _simulation_reference(simulated, float_reference, src, what: str):
    """An int8 conversion of an already-quantized model (QDQ ONNX, QAT, PT2E) is held to
    that model's own simulation: reproducing it is the converter's job, how far it is
    from float is the training's (and is noted)."""
    from converters.verify import metrics

    gaps = []
    for n, ref in float_reference.items():
        cos = metrics(ref, simulated[n]).get("cosine")
        gaps.append(f"{n} cosine {cos:.6f}" if cos is not None else f"{n} -")
    src.notes.append(f"verification reference: {what} (that simulation against the float "
                     f"model: " + ", ".join(gaps) + ")")
    return simulated


def _torch_simulation(qat, feeds, src):
    from converters.frontends.torch_export import flatten_outputs
    from converters.quantize import trained_producer

    import torch

    inputs = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in src.input_names]
    outs = flatten_outputs(trained_producer(qat).simulate(qat, inputs))
    if len(outs) != len(src.output_names):
        raise ConversionError(f"the quantized model gave {len(outs)} outputs, its export has "
                              f"{len(src.output_names)}")
    return {n: o.detach().cpu().numpy() for n, o in zip(src.output_names, outs)}


def trained_kind(qat) -> str:
    from converters.quantize import trained_producer

    producer = trained_producer(qat)
    return producer.kind if producer is not None else "quantized"


def _int8_table(model, quant_table, calibration_data, qat, src, out: Path):
    """The completed table (written next to the models) every int8 backend gets."""
    from converters.quantize import prepare_int8

    plan = prepare_int8(model, quant_table, calibration_data=calibration_data, qat=qat,
                        example_inputs=src.example_inputs)
    path = out / f"{src.name}.int8.quant.json"
    plan.table.save(path)
    src.notes.extend(plan.notes + [f"int8 quantization table: {path}"])
    return plan.table


def _run_target(backend, tname: str, model, path: Path, options: BackendOptions
                ) -> TargetReport:
    rep = TargetReport(target=tname, precision=options.precision)
    t = time.perf_counter()
    try:
        own = model.clone()
        backend.check(own, options)
        res = backend.convert(own, path, options)
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


def _verify_target(rep: TargetReport, feeds, reference, desc: str, thresholds,
                   load_check: str, threads: Optional[int]) -> None:
    import edgert

    # MNN has a runtime precision switch: compute in fp32 so the check measures the
    # file (fp16/int8 weights), not a lower-precision kernel choice of the host.
    precision = "fp32" if str(rep.path).endswith(".mnn") else "auto"
    perms_in, perms_out = _io_perms(rep.details or {})
    try:
        sess = edgert.load(rep.path, threads=threads, check=load_check, precision=precision)
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


def _io_perms(details: Mapping[str, Any]):
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

    return tuple({k: p for k, v in layouts.get(side, {}).items() if (p := perm(v))}
                 for side in ("inputs", "outputs"))


def _verification_feeds(src, verify_inputs, seed: int):
    names = src.input_names
    if verify_inputs is not None:
        desc = os.fspath(verify_inputs) if isinstance(verify_inputs, (str, os.PathLike)) \
            else "given arrays"
        return load_feeds(verify_inputs, names), desc
    if src.example_inputs is not None:
        return dict(src.example_inputs), f"torch example inputs (seed {seed})"
    specs = src.input_specs()
    dynamic = any(not isinstance(d, int) or d <= 0 for _, shape, _ in specs for d in shape[1:])
    return random_feeds(specs, seed), f"seeded random N(0,1) (seed {seed})" + (
        f"; dynamic dims: batch 1, others {DYNAMIC_DIM}" if dynamic else "")


def _source_dict(src) -> dict:
    return {"kind": src.kind, "path": src.source_path, "exporter": src.exporter,
            "notes": list(src.notes), "seconds": round(src.seconds, 4),
            "inputs": [{"name": n, "shape": [d if isinstance(d, int) else str(d) for d in s],
                        "dtype": np.dtype(t).name} for n, s, t in src.input_specs()],
            "outputs": src.output_names}


def _write_json(report: ConversionReport) -> None:
    from edgert.formatting import dumps_json

    Path(report.report_path).write_text(dumps_json(report.to_dict()))
