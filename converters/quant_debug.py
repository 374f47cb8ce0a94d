"""Per-layer error localization for int8 models: where does the error come from?

Runs the float ONNX model and an int8 version of it on the same inputs and
compares every tensor both have (cosine, SNR, max error in quantization steps).
The int8 side is one of:

* ``sim``: the table written back as QuantizeLinear/DequantizeLinear and run by
  ONNX Runtime — what the table alone costs (pre-activation outputs the backends
  fuse away are not quantized, as in the real models);
* ``tflite``: the full-int8 .tflite, converted here, run by LiteRT with its
  built-in kernels and every intermediate tensor kept (XNNPACK keeps
  intermediates to itself, so it is off here), tensors dequantized and put back
  in the ONNX layout;
* ``mnn``: the int8 .mnn, converted here, each tensor MNN keeps read through its
  Module API.

Errors accumulate along the graph, so a tensor's own SNR blames every layer
before it. Each row also has ``db_lost``: the SNR of the worst input of its
producer minus its own SNR, the error this layer adds. The worst layers are
those with the largest ``db_lost``.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from edgert.errors import UnsupportedOptionError
from edgert.fused_activations import TFLITE_FUSED
from edgert.quantization import quantize
from converters.errors import ConversionError

TARGETS = ("sim", "tflite", "mnn")
SNR_CAP = 100.0   # dB; an exact tensor counts as this clean when computing db_lost


@dataclass
class LayerError:
    tensor: str
    op: str
    cosine: float
    snr_db: float
    max_err_steps: Optional[float]
    db_lost: float

    def to_dict(self) -> Dict[str, Any]:
        return dict(vars(self))


@dataclass
class DebugReport:
    target: str
    layers: List[LayerError] = field(default_factory=list)    # graph order
    missing: List[str] = field(default_factory=list)          # float tensors the int8 side lacks
    notes: List[str] = field(default_factory=list)

    def worst(self, n: int = 10) -> List[LayerError]:
        return sorted(self.layers, key=lambda r: -r.db_lost)[:n]

    def to_dict(self, top: int = 10) -> Dict[str, Any]:
        return {"target": self.target, "layers": [r.to_dict() for r in self.layers],
                "worst": [r.tensor for r in self.worst(top)], "missing": self.missing,
                "notes": self.notes}


def _snr(ref: np.ndarray, got: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - got) ** 2))
    sig = float(np.sum(ref.astype(np.float64) ** 2))
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(max(sig, 1e-30) / err)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def _feeds(proto, data: Any, seed: int) -> Dict[str, np.ndarray]:
    from quant_tables.calibration_data import iter_feeds
    from quant_tables.onnx_tensors import input_specs

    specs = input_specs(proto)
    if data is not None:
        return next(iter_feeds(data, specs, batch=1, limit=1))
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal([d if isinstance(d, int) and d > 0 else 1 for d in s]
                                   ).astype(np.float32) for k, s in specs.items()}


def debug_int8(model: Any, table: Any, data: Any = None, target: str = "sim",
               seed: int = 0) -> DebugReport:
    """Compare every tensor of the float ``model`` (ONNX) with its int8 counterpart."""
    from converters.quantize import resolve_table
    from quant_tables.onnx_tensors import TensorTap, load_model

    if target not in TARGETS:
        raise UnsupportedOptionError(f"quant-debug target {target!r}; targets: {', '.join(TARGETS)}")
    proto = load_model(model)
    table = resolve_table(table)
    feeds = _feeds(proto, data, seed)
    ref = TensorTap(proto).run(feeds)
    got = {"sim": _sim_tensors, "tflite": _tflite_tensors, "mnn": _mnn_tensors}[target](
        proto, table, feeds)
    report = DebugReport(target)
    snr = {name: _input_snr(x, table.activations.get(name)) for name, x in feeds.items()}
    for node in proto.graph.node:
        for out in node.output:
            if out not in ref:
                continue
            if out not in got or np.asarray(got[out]).size != ref[out].size:
                # fused away (a Conv's pre-ReLU output) or not kept: it inherits its
                # inputs' error, so the next kept tensor's db_lost covers this layer too
                report.missing.append(out)
                ins = [snr[i] for i in node.input if i in snr]
                snr[out] = min(ins) if ins else math.inf
                continue
            r, g = ref[out], np.asarray(got[out], dtype=np.float32).reshape(ref[out].shape)
            s = _snr(r, g)
            snr[out] = s
            ins = [snr[i] for i in node.input if i in snr]
            worst_in = min(ins) if ins else math.inf
            lost = min(worst_in, SNR_CAP) - min(s, SNR_CAP)
            entry = table.activations.get(out)
            steps = float(np.abs(r - g).max() / entry.scale) if entry is not None else None
            report.layers.append(LayerError(out, node.op_type, _cosine(r, g), s, steps,
                                            max(lost, 0.0)))
    return report


def _input_snr(x: np.ndarray, entry) -> float:
    """What quantizing a graph input costs: every int8 model reads it quantized."""
    if entry is None:
        return math.inf
    from quant_tables.qparams import fake_quant, to_signed

    zp, lo, hi = to_signed(entry.zero_point, *entry.qrange, entry.dtype)
    return _snr(x, fake_quant(x, entry.scale, int(zp), lo, hi))


def _sim_tensors(proto, table, feeds) -> Dict[str, np.ndarray]:
    from quant_tables.exporters.qdq_onnx import insert_qdq
    from quant_tables.onnx_tensors import TensorTap

    fused = set()
    for n in proto.graph.node:
        meta = {p.key: p.value for p in n.metadata_props}
        if meta.get("edgert.fused_activation") in TFLITE_FUSED:
            fused.add(n.output[0])
    qdq, _ = insert_qdq(proto, table, skip=fused)
    out = TensorTap(qdq).run(feeds)
    return {k[: -len("__dq")] if k.endswith("__dq") else k: v for k, v in out.items()
            if not k.endswith("__float") and (k.endswith("__dq") or f"{k}__dq" not in out)}


def _ir(proto):
    import onnx_ir as ir

    return ir.serde.deserialize_model(proto)


def _tflite_tensors(proto, table, feeds) -> Dict[str, np.ndarray]:
    from converters.backends import BackendOptions
    from converters.layout import plan_layout
    from converters.layout.perm import is_identity
    from converters.tflite.backend import TFLiteBackend
    from converters.tflite.patterns import fold_patterns

    model = fold_patterns(_ir(proto))
    plan = plan_layout(model.graph, "source")
    perms, cols = {}, {}
    for node in model.graph:
        for v in node.outputs:
            p = plan.perm(v)
            if p is not None and not is_identity(p):
                perms[v.name] = tuple(p)
            c = plan.col_perm(v)
            if c is not None:      # an NHWC flatten: element j is ONNX element c[j]
                cols[v.name] = np.asarray(c)
    with tempfile.TemporaryDirectory(prefix="edgert-qdebug-") as tmp:
        path = os.path.join(tmp, "m.tflite")
        TFLiteBackend().convert(model, path, BackendOptions(precision="int8", quant_table=table))
        return _run_litert(path, feeds, perms, cols)


def _run_litert(path: str, feeds, perms, cols) -> Dict[str, np.ndarray]:
    try:
        from ai_edge_litert import interpreter as lite
    except ImportError as exc:
        raise ConversionError(f"quant-debug --target tflite needs ai-edge-litert ({exc})") from None
    interp = lite.Interpreter(model_path=path, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        x = feeds[d["name"]] if d["name"] in feeds else next(iter(feeds.values()))
        q = d["quantization_parameters"]
        if d["dtype"] != np.float32 and len(q["scales"]):
            x = quantize(x, q["scales"][0], q["zero_points"][0], -128, 127,
                         compute=np.result_type(x, np.float32))
        interp.set_tensor(d["index"], x.astype(d["dtype"]))
    interp.invoke()
    out: Dict[str, np.ndarray] = {}
    for d in interp.get_tensor_details():
        name = d["name"]
        if name in out:
            continue
        try:
            v = interp.get_tensor(d["index"])
        except ValueError:
            continue
        q = d["quantization_parameters"]
        if v.dtype == np.int8 and len(q["scales"]) == 1:
            v = (v.astype(np.float32) - q["zero_points"][0]) * q["scales"][0]
        elif v.dtype != np.float32:
            continue
        p = perms.get(name)
        if p is not None and v.ndim == len(p):
            v = np.transpose(v, np.argsort(p))
        c = cols.get(name)
        if c is not None and v.shape[-1] == c.size:
            back = np.empty_like(v)
            back[..., c] = v
            v = back
        out[name] = v
    return out


def _mnn_tensors(proto, table, feeds) -> Dict[str, np.ndarray]:
    from converters.backends import BackendOptions
    from converters.mnn.backend import MNNBackend
    from edgert.native_output import capture_native_output

    with tempfile.TemporaryDirectory(prefix="edgert-qdebug-") as tmp:
        path = os.path.join(tmp, "m.mnn")
        MNNBackend().convert(_ir(proto), path, BackendOptions(precision="int8", quant_table=table))
        with capture_native_output():
            import MNN.expr as F
            import MNN.nn as nn

            known = set(F.load_as_dict(path))
        names = [o for n in proto.graph.node for o in n.output if o in known]
        inputs = list(feeds)
        with capture_native_output():
            module = nn.load_module_from_file(path, inputs, names)
            outs = module.onForward([F.const(feeds[k], list(feeds[k].shape), F.NCHW)
                                     for k in inputs])
            result = {}
            for name, o in zip(names, outs):   # read every output at once: MNN reuses memory
                try:
                    result[name] = _mnn_nchw(np.array(o.read(), dtype=np.float32), o, F)
                except Exception:  # a tensor MNN cannot hand out (int shapes...)
                    continue
    return result


def _mnn_nchw(raw: np.ndarray, var, F) -> np.ndarray:
    """Unpack MNN's NC4HW4 (channels in blocks of 4, padded) into NCHW."""
    shape = list(var.shape)
    if var.data_format != F.NC4HW4 or len(shape) < 2:
        return raw.reshape(shape)
    n, c = shape[0], shape[1]
    rest = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    c4 = (c + 3) // 4
    if raw.size != n * c4 * 4 * rest:
        return np.array(F.convert(var, F.NCHW).read(), dtype=np.float32).reshape(shape)
    x = raw.reshape(n, c4, rest, 4).transpose(0, 1, 3, 2).reshape(n, c4 * 4, rest)[:, :c]
    return x.reshape(shape)
