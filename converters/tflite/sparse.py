"""Sparse weights in .tflite files, only where a LiteRT kernel executes them.

What LiteRT runs (tensorflow/lite/kernels/fully_connected.cc, densify.cc,
delegates/xnnpack/README.md "Sparse Inference"):

* FULLY_CONNECTED, float32 weights: a sparse filter in CSR (``FullyConnectedSparseWeight``)
  or in 1x4 blocks along the input (``FullyConnectedSparseWeight1x4``, optimized and
  multi-threaded). Chosen here: 1x4 blocks when at least ``MIN_BLOCK`` of the 1x4
  blocks are zero, CSR when at least ``MIN_CSR`` of the elements are (thresholds
  measured, see below).
* FULLY_CONNECTED, int8 weights (full int8, and dynamic-range "hybrid"): only 1x16
  blocks along the input, symmetric weights (zero point 0); the hybrid kernel's
  ledger also caps a row at 256 blocks of 16 (4096 inputs), never computes the row
  sums asymmetric input quantization needs (so sparse hybrid FCs quantize inputs
  symmetrically), and — measured with ai-edge-litert 2.3 — XNNPACK takes hybrid
  FCs and reads a sparse filter as if it were dense, so hybrid stays dense unless
  ``TfliteOptions.tflite_sparse_hybrid`` asks for it (interpreters without XNNPACK).
* CONV_2D / DEPTHWISE_CONV_2D: no sparse kernel in LiteRT itself; the weight is
  stored sparse and a DENSIFY op expands it. XNNPACK densifies such weights once
  at load, and runs sparse inference (Fast Sparse ConvNets) only for a subgraph of
  its documented shape (3x3 stride-2 stem on 3 channels, 1x1 convs at least 2/3
  zero, ...); otherwise the gain is file size.
* Anything else (fp16 weights, which reach the op through DEQUANTIZE; blocks that do
  not divide the input; too few zeros): dense, and the report says why.

The XNNPACK delegate does not take sparse FULLY_CONNECTED filters, so those ops run
on LiteRT's built-in kernels (between XNNPACK partitions).

The post-pass runs on the lowered subgraph (after full-int8 quantization), finds
each weighted op's ONNX layer by its output tensor (as full_int8.py does), and
encodes the weights of layers the sparsity table names. Encoding follows the
TACO-style format TFLite uses: leading dims DENSE, the last (blocked) dim
SPARSE_CSR with ``array_segments`` / ``array_indices``, a trailing DENSE block dim.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from converters.tflite.builder import OpRecord, SubgraphBuilder
from converters.tflite.sparsity import Encoded, block_sparsity, encode

# Measured with bench/bench_sparsity.py (ai-edge-litert 2.3, x86, 1 thread, FC 1024x1024):
# 1x4 blocks break even with the dense kernel near 50% zero blocks (2.5x at 80%); CSR is
# slower than dense at 80% zeros (0.85x), and past 90% zeros the 1x4 blocks win anyway.
MIN_BLOCK = 0.6          # fraction of all-zero blocks for a block-sparse FC
MIN_CSR = 0.9            # fraction of zeros for a CSR FC
MIN_DENSIFY = 0.5        # fraction of zeros for a sparse-stored (DENSIFY) conv weight
HYBRID_MAX_BLOCKS = 255  # the hybrid kernel's ledger stores counts and indices in uint8
F32, I8 = 0, 9
WEIGHTED = {"FULLY_CONNECTED": "fc", "CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise"}


@dataclass
class SparseReport:
    layers: List[Dict[str, Any]] = field(default_factory=list)
    densify_ops: int = 0
    bytes_saved: int = 0

    def notes(self) -> List[str]:
        sparse = [r for r in self.layers if r["format"] != "dense"]
        out = [f"sparse weights: {len(sparse)} of {len(self.layers)} table layers stored "
               f"sparse ({self.bytes_saved / 1e3:.1f} kB saved), {self.densify_ops} DENSIFY op(s)"]
        for r in [r for r in self.layers if r["format"] == "dense"][:8]:
            out.append(f"  dense: {r['weight']} ({r['kind']}): {r['why']}")
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"densify_ops": self.densify_ops, "bytes_saved": self.bytes_saved,
                "layers": self.layers}


def _const_array(sg: SubgraphBuilder, t: int) -> Optional[np.ndarray]:
    ten = sg.tensors[t]
    if not ten.buffer or ten.isVariable or sg.buffer_data[ten.buffer] is None:
        return None
    dtype = {F32: np.float32, I8: np.int8}.get(ten.type)
    if dtype is None:
        return None
    return np.frombuffer(sg.buffer_data[ten.buffer], dtype=dtype).reshape(ten.shape)


def _symmetric(ten) -> bool:
    q = ten.quantization
    zp = getattr(q, "zeroPoint", None) if q is not None else None
    return not zp or all(int(z) == 0 for z in zp)


def _fc_choice(w: np.ndarray, ten, hybrid: bool, allow_hybrid: bool = False
               ) -> Tuple[Optional[int], str]:
    """(block or None for dense, reason) for a FULLY_CONNECTED filter [out, in]."""
    zeros = float(np.mean(w == 0))
    if hybrid and not allow_hybrid:
        return None, ("dynamic-range int8: LiteRT 2.3's XNNPACK delegate takes this FC and "
                      "reads a sparse filter as dense (wrong results); kept dense "
                      "(backend option tflite_sparse_hybrid=True writes 1x16 blocks for "
                      "interpreters without XNNPACK)")
    if ten.type == I8:
        if not _symmetric(ten):
            return None, "int8 sparse FC needs symmetric weights (zero point 0)"
        if w.shape[1] % 16:
            return None, f"int8 sparse FC takes 1x16 blocks; {w.shape[1]} inputs are not a multiple of 16"
        if hybrid and w.shape[1] // 16 > HYBRID_MAX_BLOCKS + 1:
            return None, "the hybrid sparse kernel's ledger holds at most 256 blocks per row"
        bs = block_sparsity(w, 16)
        if bs < MIN_BLOCK:
            return None, (f"{bs:.0%} of 1x16 blocks are zero (< {MIN_BLOCK:.0%}; "
                          "int8 FC takes 1x16 blocks only)")
        return 16, (f"{bs:.0%} of 1x16 blocks zero: LiteRT's 1x16 block-sparse "
                    f"{'hybrid' if hybrid else 'int8'} kernel (built-in; XNNPACK leaves sparse "
                    "filters to it)")
    bs4 = block_sparsity(w, 4)
    if bs4 >= MIN_BLOCK:
        return 4, f"{bs4:.0%} of 1x4 blocks zero: LiteRT's 1x4 block-sparse float kernel"
    if zeros >= MIN_CSR:
        return 1, f"{zeros:.0%} zeros (1x4 blocks {bs4:.0%}): LiteRT's CSR sparse float kernel"
    return None, (f"{zeros:.0%} zeros, {bs4:.0%} of 1x4 blocks: below {MIN_CSR:.0%} / "
                  f"{MIN_BLOCK:.0%} LiteRT's dense kernel is faster (measured)")


def _layer_of(onnx, sg: SubgraphBuilder, rec: OpRecord):
    node = onnx.layer_node(sg.tensors[rec.outputs[0]].name)
    if node is None or len(node.inputs) < 2 or node.inputs[1] is None:
        return None
    return node


def sparsify(sg: SubgraphBuilder, model: Any, table: Any, precision: str,
             hybrid: bool = False) -> SparseReport:
    """Encode the weights of the table's layers in place; insert DENSIFY for convolutions.

    ``hybrid``: write 1x16 blocks for dynamic-range int8 FCs too (``tflite_sparse_hybrid``)."""
    from converters.tflite.full_int8 import _Onnx   # the ONNX layer behind an op's output

    onnx = _Onnx(model, table)
    report = SparseReport()
    readers: Dict[int, int] = {}
    for rec in sg.ops:
        for i in rec.inputs:
            readers[i] = readers.get(i, 0) + 1
    new_ops: List[OpRecord] = []
    for rec in sg.ops:
        kind = WEIGHTED.get(rec.builtin)
        node = _layer_of(onnx, sg, rec) if kind else None
        entry = table.weights.get(node.inputs[1].name) if node is not None else None
        if entry is None:
            new_ops.append(rec)
            continue
        row = {"weight": node.inputs[1].name, "kind": kind, "op": rec.builtin,
               "pattern": entry.pattern, "format": "dense", "runs": "dense"}
        if readers.get(rec.inputs[1], 0) > 1:
            row.update(zeros=None, why="the weight tensor is shared with another op")
            report.layers.append(row)
            new_ops.append(rec)
            continue
        densify = _encode_op(sg, rec, kind, row, precision, hybrid)
        report.layers.append(row)
        report.bytes_saved += row.pop("_saved", 0)
        if densify is not None:
            new_ops.append(densify)
            report.densify_ops += 1
        new_ops.append(rec)
    sg.ops = new_ops
    return report


def _encode_op(sg: SubgraphBuilder, rec: OpRecord, kind: str, row: Dict[str, Any],
               precision: str, allow_hybrid: bool = False) -> Optional[OpRecord]:
    t = rec.inputs[1]
    ten = sg.tensors[t]
    w = _const_array(sg, t)
    if w is None:
        row["zeros"] = None
        row["why"] = (f"the weight reaches the op through DEQUANTIZE ({precision} storage); "
                      "sparse kernels take float32 or int8 constants")
        return None
    row["zeros"] = round(float(np.mean(w == 0)), 4)
    if kind == "fc":
        hybrid = ten.type == I8 and sg.tensors[rec.inputs[0]].type == F32
        block, why = _fc_choice(w, ten, hybrid, allow_hybrid)
        row["why"] = why
        if block is None:
            return None
        enc = encode(w, block)
        if not enc.values.size:
            row["why"] = "all-zero weight: kept dense"
            return None
        _store(sg, t, enc, row, "CSR" if block == 1 else f"1x{block} blocks")
        rec.ext["sparse_weight"] = True
        if hybrid and rec.options is not None:
            # the sparse hybrid kernel never computes the filter row sums that
            # asymmetric input quantization subtracts: quantize inputs symmetrically
            rec.options.asymmetricQuantizeInputs = False
        row["runs"] = "sparse"
        return None
    if ten.type != F32:
        row["why"] = "DENSIFY is used for float convolution weights only"
        return None
    if row["zeros"] < MIN_DENSIFY:
        row["why"] = f"{row['zeros']:.0%} zeros < {MIN_DENSIFY:.0%}: sparse storage would not pay"
        return None
    enc = encode(w, 1)
    if not enc.values.size:
        row["why"] = "all-zero weight: kept dense"
        return None
    dense_out = sg.tensor(f"{ten.name}_densified", list(ten.shape), np.float32)
    _store(sg, t, enc, row, "DENSIFY (CSR)")
    rec.inputs = [dense_out if i == t else i for i in rec.inputs]
    row["runs"] = "dense (stored sparse)"
    row["why"] = (f"{row['zeros']:.0%} zeros; no sparse {kind} kernel in LiteRT: DENSIFY at load "
                  "(XNNPACK's sparse inference needs a Fast-Sparse-ConvNets subgraph)")
    return OpRecord("DENSIFY", [t], [dense_out])


def _store(sg: SubgraphBuilder, t: int, enc: Encoded, row: Dict[str, Any], fmt: str) -> None:
    ten = sg.tensors[t]
    old = len(sg.buffer_data[ten.buffer])
    data = enc.values.tobytes()
    index_bytes = sum(len(getattr(d.arraySegments, "values", None) or []) *
                      {1: 4, 2: 2, 3: 1}.get(d.arraySegmentsType, 4) +
                      len(getattr(d.arrayIndices, "values", None) or []) *
                      {1: 4, 2: 2, 3: 1}.get(d.arrayIndicesType, 4)
                      for d in enc.sparsity.dimMetadata)
    sg.buffer_data[ten.buffer] = data
    ten.sparsity = enc.sparsity
    row["format"] = fmt
    row["bytes_dense"] = old
    row["bytes_sparse"] = len(data) + index_bytes
    row["_saved"] = old - row["bytes_sparse"]
