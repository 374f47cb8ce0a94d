"""The MNN backend: hand the optimized ONNX to MNN's own converter.

MNN's converter is the authority on MNN's format and fuses what MNN's kernels
want (Conv+ReLU/ReLU6, its own layouts), so we do not write .mnn files
ourselves; we give it a clean, folded ONNX and the right flags:

    fp32            (no flag)
    fp16            --fp16                 (weights stored as half floats; we
                                            round them to nearest first: fp16.py)
    int8_weights    --weightQuantBits 8    (weight-only; per channel, or
    int4_weights    --weightQuantBits 4     --weightQuantBlock N when
                                            options.weight_block_size = N)
    int8            --compressionParamsFile params.json (full int8; the
                                            quant-table hook in compression.py)
    sparsity table  --detectSparseSpeedUp + PRUNE params (sparse.py; which
                    layers went sparse, and why, in details["sparsity"])

Nodes MNN computes wrongly (``support.WRONG``) are rewritten into ops it computes right
(``rewrites.py``) or refused before anything is written; ops MNN lacks that
``converters.passes.decompose`` can write as other ops (Mish) are decomposed, on the
backend's own copy of the graph.

The backend's own knobs are ``MnnOptions`` (options.py):
``weight_quant_asymmetric=True`` passes ``--weightQuantAsymmetric`` (see
docs/CONVERTERS.md for what it does in MNN 3.6), ``mnn_args=[...]`` appends raw
converter flags, ``mnn_symmetric`` chooses zero points for full int8,
``timeout_s`` bounds the converter (default 600 s).

The converter runs through ``_tools.mnnconvert`` (the C binding), never the
``mnnconvert`` console script or ``MNN.tools`` (which pip-installs a logging
SDK and uploads usage data), in a child process (``_convert_child.py``) so
that a converter crash becomes a ConversionError carrying MNN's own output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import onnx_ir as ir

from converters.backends import (Backend, BackendOptions, BackendResult, Checked,
                                 register_backend)
from converters.mnn import compression, fp16, legalize, rewrites, sparse, support
from converters.mnn.options import MnnOptions
from converters.passes import decompose
from converters.onnx_io import save_onnx
from edgert.errors import UnsupportedOptionError
from edgert.mnn_summary import BIZCODE, bizcode_for
from converters.errors import ConversionError

_CHILD = Path(__file__).with_name("_convert_child.py")
_WEIGHT_BITS = {"int8_weights": 8, "int4_weights": 4}
_PRECISIONS = ("fp32", "fp16", "int8_weights", "int4_weights", "int8")


def dynamic_inputs(model: ir.Model) -> Dict[str, List[int]]:
    """{input name: axes not fixed to a size}: MNN's converter fixes a dynamic batch to 1,
    so the axes travel in the bizCode (``edgert.mnn_summary``) for the runtime to read."""
    out: Dict[str, List[int]] = {}
    for v in model.graph.inputs:
        if v.shape is not None:
            axes = [k for k, d in enumerate(v.shape) if not isinstance(d, int) or d < 0]
            if axes:
                out[v.name] = axes
    return out


def converter_args(onnx_path: str, mnn_path: str, options: BackendOptions,
                   params_path: str = "", compression_args: Sequence[str] = (),
                   sparse_speedup: bool = False, bizcode: str = BIZCODE) -> List[str]:
    """MNN converter arguments for ``options`` (program name first, as argv).

    ``params_path``, ``compression_args`` and ``sparse_speedup`` are what the
    compression-params step needs (full int8, sparsity); the user's ``mnn_args``
    come before its flags."""
    knobs = options.knobs(MnnOptions)
    args = ["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path, "--MNNModel", mnn_path,
            "--bizCode", bizcode]
    p = options.precision
    if p == "fp16":
        args.append("--fp16")
    elif p in _WEIGHT_BITS:
        args += ["--weightQuantBits", str(_WEIGHT_BITS[p])]
        if options.weight_block_size:
            args += ["--weightQuantBlock", str(int(options.weight_block_size))]
        if knobs.weight_quant_asymmetric:
            args.append("--weightQuantAsymmetric")
    if params_path:
        args += ["--compressionParamsFile", params_path]
    if knobs.detect_sparse_speedup or sparse_speedup:
        args.append("--detectSparseSpeedUp")
    return args + list(knobs.mnn_args) + list(compression_args)


# weights over this many bytes go to an external data file for MNN's converter
_EXTERNAL_WEIGHTS_BYTES = 1 << 20


def _save_for_converter(model: ir.Model, path: str) -> None:
    """The ONNX file MNN's converter reads: big weights in ``<file>.data`` (MNN reads ONNX
    external data), which writes their bytes as they are instead of serializing them into
    one protobuf (ResNet-18: 0.17 s instead of 0.44 s; the .mnn written is the same)."""
    size = sum(v.const_value.nbytes for v in model.graph.initializers.values()
               if v.const_value is not None)
    if size <= _EXTERNAL_WEIGHTS_BYTES:
        save_onnx(model, path)
        return
    ir.save(model, path, external_data=os.path.basename(path) + ".data",
            size_threshold_bytes=4096)


def run_converter(args: List[str], out_path: str, timeout_s: float = 600.0,
                  count_ops: bool = True) -> Tuple[Dict[str, Any], str]:
    """Run MNN's converter in a child process. Returns (result, MNN's output text).

    The child is forked from verification's warm zygote when one is free (no Python
    start: 0.03-0.1 s of a conversion, more on a loaded machine), else started as
    ``python _convert_child.py``; either way a crash or a hang is the child's."""
    from converters.flow.launch import CallTimeout, call

    job = {"args": args, "out": out_path, "count_ops": count_ops}
    too_slow = f"MNN's converter did not finish within {timeout_s:.0f} s"
    with tempfile.TemporaryDirectory(prefix="edgert-mnnconvert-") as tmp:
        log = os.path.join(tmp, "converter.log")
        try:
            code = call("converters.mnn._convert_child:run", job, log, timeout_s)
        except CallTimeout:
            raise ConversionError(too_slow) from None
        if code is not None:
            with open(log, encoding="utf-8", errors="replace") as f:
                stdout, stderr = f.read(), ""
        else:
            try:
                proc = subprocess.run([sys.executable, str(_CHILD), json.dumps(job)],
                                      capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise ConversionError(too_slow) from None
            code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    text = stdout + stderr
    result: Dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("EDGERT_RESULT "):
            result = json.loads(line[len("EDGERT_RESULT "):])
    mnn_lines = [ln for ln in text.splitlines() if ln.strip() and
                 not ln.startswith("EDGERT_RESULT ") and "The device supports" not in ln]
    if code < 0:
        raise ConversionError(f"MNN's converter crashed (signal {-code}); its last "
                              f"output: {' | '.join(mnn_lines[-4:]) or '(none)'}")
    if code != 0 or not result.get("exists"):
        errors = [ln for ln in mnn_lines if "error" in ln.lower() or "fail" in ln.lower()]
        raise ConversionError("MNN's converter failed: "
                              + " | ".join((errors or mnn_lines)[-4:] or ["(no output)"]))
    return result, "\n".join(mnn_lines)


@dataclass
class _Compression:
    """The compression-params file and what MNN's converter needs with it."""

    params_path: str = ""
    args: List[str] = field(default_factory=list)    # converter flags it needs
    sparse_speedup: bool = False
    sparse_plan: Any = None


def _fused_gelu_allowed(node: ir.Node) -> Optional[str]:
    """``support.node_reason``, but MNN's approximate GELU is accepted (approximate_gelu)."""
    if node.op_type in ("Gelu", "Erf"):
        return None
    return support.node_reason(node)


def _rewritten(model: ir.Model, reason=support.node_reason) -> Tuple[ir.Model, List[str]]:
    """(model with what MNN gets wrong rewritten and what it lacks decomposed, notes): MNN's
    rewrites and the shared decompositions in turn, since each may emit an op the other
    covers (ReduceL2 -> ReduceSum with empty axes -> ReduceSum over every axis). A copy
    is made when anything changes; the caller's model is never altered."""
    work = model
    done: Counter = Counter()
    decomposed = decompose.DecomposeReport()
    for _ in range(4):
        todo_rw = rewrites.needs_rewrite(work, reason)
        todo_dec = decompose.needs_decomposition(work, reason)
        if not (todo_rw or todo_dec):
            break
        if work is model:
            work = model.clone()
        done += rewrites.apply(work, reason)
        decomposed.counts += decompose.decompose_unsupported(work, reason).counts
    return work, rewrites.notes(done) + decomposed.notes("mnn")


@register_backend
class MNNBackend(Backend):
    name = "mnn"
    extension = ".mnn"
    options_type = MnnOptions

    def check(self, model: ir.Model, options: BackendOptions) -> Checked:
        if options.precision not in _PRECISIONS:
            raise UnsupportedOptionError(f"MNN precision {options.precision!r}; accepted: "
                                         f"{', '.join(_PRECISIONS)}")
        if options.io_layout != "source":
            raise UnsupportedOptionError("MNN keeps the source's input layout (io_layout="
                                         f"'source'); got {options.io_layout!r}")
        if options.io_dtype != "float":
            raise UnsupportedOptionError("MNN models take float inputs; io_dtype="
                                         f"{options.io_dtype!r} is for TFLite")
        if options.weight_block_size and options.precision not in _WEIGHT_BITS:
            raise UnsupportedOptionError("weight_block_size applies to int8_weights and "
                                         f"int4_weights, not {options.precision}")
        knobs = options.knobs(MnnOptions)
        reason = support.node_reason
        if knobs.approximate_gelu:
            reason = _fused_gelu_allowed
        work, notes = _rewritten(model, reason)
        support.check_model(work, reason)
        if knobs.approximate_gelu and any(n.op_type in ("Gelu", "Erf") for n in work.graph):
            notes.append("approximate_gelu: MNN's fused GELU kernel kept (max abs error 4.7e-4)")
        return Checked(work, notes, unchanged=work is model)

    def write(self, checked: Checked, out_path: Path, options: BackendOptions
              ) -> BackendResult:
        model = checked.model
        out_path = Path(out_path)
        legal = legalize.legalize(model)         # a note per change made
        notes = list(checked.notes) + legal
        if options.precision == "fp16":
            n = fp16.round_weights_to_fp16(model)
            notes.append(f"rounded {n} weight tensor(s) to nearest fp16 (MNN's --fp16 "
                         "truncates)")
        with tempfile.TemporaryDirectory(prefix="edgert-mnn-") as tmp:
            # the flow's saved file holds this very graph: MNN's converter reads it
            reuse = (checked.unchanged and not legal and options.precision != "fp16"
                     and bool(options.saved_model) and os.path.isfile(options.saved_model))
            onnx_path = options.saved_model if reuse else os.path.join(tmp, "model.onnx")
            if not reuse:
                _save_for_converter(model, onnx_path)
            comp = self._compression(model, options, out_path, notes)
            args = converter_args(onnx_path, str(out_path), options, comp.params_path,
                                  comp.args, comp.sparse_speedup,
                                  bizcode_for(dynamic_inputs(model)))
            if out_path.exists():
                out_path.unlink()
            t0 = time.perf_counter()
            result, output = run_converter(args, str(out_path),
                                           options.knobs(MnnOptions).timeout_s,
                                           count_ops=options.count_ops)
            seconds = time.perf_counter() - t0
        shown = [a if a != onnx_path else "<optimized>.onnx" for a in args]
        notes.append("MNN converter: " + " ".join(shown[1:]))
        if result.get("op_count_error"):
            notes.append(f"op counts unavailable: {result['op_count_error']}")
        details = {"converter_args": shown[1:], "converter_seconds": round(seconds, 4),
                   "converter_input": "saved_model" if reuse else "rewritten copy",
                   "converter_output": output.splitlines()[-20:]}
        if comp.sparse_plan is not None:
            details["sparsity"] = sparse.report(out_path, comp.sparse_plan, options.precision,
                                                notes)
        return BackendResult(
            target=self.name, path=out_path, size_bytes=out_path.stat().st_size,
            op_counts=result.get("op_counts", {}), notes=notes, details=details)

    def _compression(self, model, options: BackendOptions, out_path: Path,
                     notes: List[str]) -> _Compression:
        """Write the compression-params JSON when full int8 or sparsity is asked."""
        params: Dict[str, Any] = {}
        comp = _Compression()
        if options.precision == "int8":
            p, extra_flags, qnotes = compression.quantization_params(
                model, options.quant_table, options.knobs(MnnOptions).mnn_symmetric)
            notes.extend(qnotes)
            params.update(p)
            comp.args += extra_flags
        if options.sparsity_table is not None:
            p, extra_flags, snotes, comp.sparse_plan = compression.sparsity_params(
                model, options.sparsity_table)
            notes.extend(snotes)
            params["algo"] = list(params.get("algo", [])) + p.pop("algo")  # QUANTIZE + PRUNE
            params.update({k: v for k, v in p.items() if k not in params})
            comp.sparse_speedup = True
            comp.args += extra_flags
        if params:
            path = out_path.with_suffix(".compression.json")
            path.write_text(json.dumps(params, indent=1))
            comp.params_path = str(path)
        return comp
