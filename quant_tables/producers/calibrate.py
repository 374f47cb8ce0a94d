"""Post-training calibration: a quantization table from a float ONNX model and user data.

Runs the model on ONNX Runtime over the calibration set, estimates a float range
per activation tensor (min/max, percentile or entropy; see
``range_estimators.py``), and turns ranges into int8 scale/zero point. Weights
get per-channel symmetric scales from their own values. Given a partial table
(for example from QAT, missing the tensors a converter pass created), it
calibrates only what the table lacks and keeps every entry the table has.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional

import numpy as np

from edgert.errors import InputError
from quant_tables.calibration_data import DataLike, iter_feeds
from quant_tables.layer_weights import constant_arrays, layer_weights
from quant_tables.onnx_tensors import TensorTap, float_tensors, input_specs, load_model
from quant_tables.producers.range_estimators import make
from quant_tables.propagate import fill_passthrough
from quant_tables.provenance import Provenance
from quant_tables.qparams import dtype_range, per_channel_symmetric, qparams_from_range
from quant_tables.table import ActivationQuant, QuantTable, WeightQuant


def weight_entries(model, names: Optional[Iterable[str]] = None, per_channel: bool = True,
                   dtype: str = "int8", source: str = "weights:absmax") -> dict:
    """Symmetric narrow-range weight quantization from the weights' own values."""
    proto = load_model(model)
    arrays = constant_arrays(proto)
    wanted = set(names) if names is not None else None
    out = {}
    qmin, qmax = dtype_range(dtype)
    for lw in layer_weights(proto):
        if lw.name in out or (wanted is not None and lw.name not in wanted):
            continue
        w = np.asarray(arrays[lw.name], dtype=np.float32)
        if per_channel:
            scale = per_channel_symmetric(w, lw.axis, dtype)
            axis: Optional[int] = lw.axis
        else:
            scale = [max(float(np.abs(w).max()) / qmax, float(np.finfo(np.float32).eps))]
            axis = None
        out[lw.name] = WeightQuant(scale=scale, zero_point=0, axis=axis, dtype=dtype,
                                   quant_min=-qmax, quant_max=qmax, symmetric=True, source=source)
    return out


def activation_entry(lo: float, hi: float, dtype: str, symmetric: bool, source: str
                     ) -> ActivationQuant:
    scale, zp = qparams_from_range(lo, hi, dtype, symmetric=symmetric)
    return ActivationQuant(scale=scale, zero_point=zp, dtype=dtype, min=lo, max=hi, source=source)


def calibrate(model: Any, data: DataLike, method: str = "minmax", *, percentile: float = 99.99,
              table: Optional[QuantTable] = None, tensors: Optional[Iterable[str]] = None,
              activation_dtype: str = "int8", symmetric_activations: bool = False,
              weights: bool = True, per_channel: bool = True, batch: int = 16,
              limit: Optional[int] = None, source_name: str = "") -> QuantTable:
    """A table for ``model`` (ONNX path/proto/onnx_ir model) from calibration ``data``.

    ``table``: a partial table; only tensors it lacks are calibrated, its entries win.
    ``tensors``: calibrate only these activation tensors (default: every float tensor).
    ``limit``: at most this many feeds (batches) from ``data``.
    """
    proto = load_model(model)
    names = list(tensors) if tensors is not None else float_tensors(proto)
    if table is not None:
        names = [n for n in names if n not in table.activations]
    kwargs = {"percentile": percentile} if method == "percentile" else {}
    est = make(method, **kwargs)
    shapes = input_specs(proto)
    samples = 0
    if names:
        tap = TensorTap(proto, names)
        for feed in iter_feeds(data, shapes, batch=batch, limit=limit):
            out = tap.run(feed)
            samples += next(iter(feed.values())).shape[0] if feed else 0
            for n in names:
                if n in out:
                    est.observe(n, out[n])
        if samples == 0:
            raise InputError("the calibration data holds no samples")
        if est.two_pass:
            for feed in iter_feeds(data, shapes, batch=batch, limit=limit):
                out = tap.run(feed)
                for n in names:
                    if n in out:
                        est.observe_second(n, out[n])
    source = f"calibration:{est.description()}"
    acts = {}
    for n in names:
        if n in est.lo:
            lo, hi = est.range(n)
            acts[n] = activation_entry(lo, hi, activation_dtype, symmetric_activations, source)
    wts = {}
    if weights:
        skip = set(table.weights) if table is not None else set()
        wts = {k: v for k, v in weight_entries(proto, per_channel=per_channel).items()
               if k not in skip}
    prov = Provenance(producer="calibrate", source=source_name or _model_name(proto),
                      method=est.description(),
                      details={"samples": samples, "activation_dtype": activation_dtype,
                               "symmetric_activations": symmetric_activations,
                               "per_channel_weights": per_channel,
                               **({"mask_values_left_out": dict(est.masked)}
                                  if est.masked else {})})
    new = QuantTable(activations=acts, weights=wts, provenance=prov)
    result = table.merged(new) if table is not None else new
    fill_passthrough(result, proto, overwrite=set(acts))
    return result


def _model_name(proto) -> str:
    return proto.graph.name or "onnx model"


def missing_activations(model: Any, table: QuantTable) -> List[str]:
    """Float tensors of ``model`` that ``table`` has no entry for."""
    return table.missing(float_tensors(load_model(model)))
