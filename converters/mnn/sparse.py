"""Sparse MNN models from a sparsity table: the PRUNE params, and which layers went sparse.

How MNN does it (tools/converter/source/common/AddSparseInfo.cpp and
WeightQuantAndCoding.cpp, source/backend/cpu/compute/ConvolutionFloatFactory.cpp,
MNN 3.6): with ``--detectSparseSpeedUp`` the converter measures every
Convolution / ConvolutionDepthwise weight (Gemm/MatMul with a constant weight
become Convolutions) in blocks of ``sparseBlockOC`` output channels — a block
at one input position counts as zero only when all its rows are zero — and marks
the op sparse when ``1 - nnz / size`` exceeds a threshold that falls with the
block size (block 1: 0.6, 2: 0.5, 3: 0.4, 4 and more: 0.3). The block size is
one value for the whole model: ``oc_blocks[0]`` of a SIMD_OC ``PRUNE`` algorithm
in the compression params (RANDOM, block 1, otherwise). Marked float weights are
stored as non-zeros plus an index (``compressFloatWeightToSparse``) and run on
``SparseConvolutionTiledExecutor`` when MNN computes in fp32 on AVX2/AVX-512 or
ARM (``supportSparse``); depthwise convolutions are stored sparse but expanded
to dense at load; with ``--fp16`` the weights go to half floats first and run dense.

So this module writes the PRUNE algorithm (SIMD_OC with the table's output-channel
block size when the table uses blocks, else RANDOM), predicts each table layer's
fate with MNN's own rule, and after conversion reads the .mnn file
(``model_reader``) to report what MNN actually did, with the reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np

# AddSparseInfo.cpp getSparsityThreshold(), indexed by sparseBlockOC (capped at 16)
THRESHOLDS = (1.0, 0.6, 0.5, 0.4) + (0.3,) * 13
SUPPORTED_BLOCKS = (1, 2, 4, 8)          # what MNN's kernels run (others are re-blocked)


def threshold(block_oc: int) -> float:
    return THRESHOLDS[min(max(int(block_oc), 0), len(THRESHOLDS) - 1)]


def mnn_sparsity(w: np.ndarray, out_axis: int, block_oc: int) -> float:
    """``CommonCompute::statisticWeightSparsity``: 1 - nnz / size, blocks of rows counted whole."""
    rows = np.moveaxis(np.asarray(w) != 0, out_axis % w.ndim, 0).reshape(w.shape[out_axis], -1)
    oc = rows.shape[0]
    full = (oc // block_oc) * block_oc
    blocks = rows[:full].reshape(-1, block_oc, rows.shape[1]).any(axis=1)
    nnz = int(blocks.sum()) * block_oc + int(rows[full:].sum())
    return 1.0 - nnz / rows.size if rows.size else 0.0


@dataclass
class LayerPlan:
    weight: str
    kind: str                       # conv1x1 / conv / depthwise / fc / other
    op_type: str                    # ONNX op
    mnn_name: str                   # the op name MNN gives the layer
    table_pattern: str
    zeros: float                    # plain zero fraction of the weight
    mnn_sparsity: float             # MNN's figure under the model's block size
    threshold: float
    predicted_sparse: bool


@dataclass
class SparsePlan:
    algo: str                       # "SIMD_OC" or "RANDOM"
    block_oc: int
    layers: List[LayerPlan] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)      # table names the graph lacks
    notes: List[str] = field(default_factory=list)

    def params(self) -> Dict[str, Any]:
        """The PRUNE algorithm in MNN_compression.proto's JSON form."""
        names = [l.weight for l in self.layers]
        ratios = [round(l.zeros, 6) for l in self.layers]
        layer_names = [l.mnn_name for l in self.layers]
        if self.algo == "SIMD_OC":
            prune = {"type": "SIMD_OC", "simdOcPrunerParams": {
                "weightTensorNames": names, "pruneRatios": ratios, "layerNames": layer_names,
                "ocBlocks": [self.block_oc] * max(1, len(names))}}
        else:
            prune = {"type": "RANDOM", "levelPrunerParams": {
                "weightTensorNames": names, "pruneRatios": ratios, "layerNames": layer_names}}
        return {"version": "0.0.0", "algo": [{"type": "PRUNE", "pruneParams": prune}]}


def _block_oc(table, layers) -> Tuple[str, int, List[str]]:
    """The one block size for the model: the output-channel block most table weight uses."""
    votes: Counter = Counter()
    for lw in layers:
        e = table.weights[lw.name]
        if e.pattern == "block" and e.block is not None:
            axes = [a % lw.array.ndim for a in e.axes]
            b_out = e.block[axes.index(lw.out_axis)] if lw.out_axis in axes else 1
            votes[int(b_out)] += lw.array.size
        else:
            votes[1] += lw.array.size
    notes: List[str] = []
    if not votes:
        return "RANDOM", 1, notes
    block, _ = votes.most_common(1)[0]
    if len(votes) > 1:
        notes.append(f"MNN takes one block size per model: {block} output channels "
                     f"(the table also has {sorted(b for b in votes if b != block)})")
    if block > 1 and block not in SUPPORTED_BLOCKS:
        notes.append(f"MNN's x86 kernels re-block {block}-channel blocks to "
                     f"{max(b for b in SUPPORTED_BLOCKS if block % b == 0)}")
    return ("SIMD_OC" if block > 1 else "RANDOM"), int(block), notes


def plan_sparsity(model: Any, table: Any) -> SparsePlan:
    """Which table layers MNN will mark sparse, by MNN's rule, on the optimized graph."""
    from converters.mnn.names import mnn_layer_names
    from quant_tables.onnx_tensors import load_model
    from quant_tables.producers.sparsity_onnx import onnx_layers

    model = load_model(model)
    layers = {lw.name: lw for lw in onnx_layers(model)}
    in_table = [layers[n] for n in table.weights if n in layers]
    algo, block, notes = _block_oc(table, in_table)
    plan = SparsePlan(algo, block, notes=notes,
                      missing=sorted(n for n in table.weights if n not in layers))
    op_names = mnn_layer_names(model)
    for lw in in_table:
        e = table.weights[lw.name]
        s = mnn_sparsity(lw.array, lw.out_axis, block)
        t = threshold(block)
        plan.layers.append(LayerPlan(
            weight=lw.name, kind=lw.kind, op_type=op_names.get(lw.name, ("", ""))[1],
            mnn_name=op_names.get(lw.name, ("", ""))[0], table_pattern=_pattern_label(e),
            zeros=float(np.mean(lw.array == 0)), mnn_sparsity=s, threshold=t,
            predicted_sparse=s > t))
    if plan.missing:
        plan.notes.append(f"{len(plan.missing)} table weight(s) are not in the graph: "
                          + ", ".join(plan.missing[:8]))
    return plan


def _pattern_label(e) -> str:
    if e.pattern == "block":
        return f"block {e.block[0]}x{e.block[1]}"
    if e.pattern == "n:m":
        return f"{e.n}:{e.m}"
    return e.pattern


def sparsity_params(model: Any, table: Any) -> Tuple[Dict[str, Any], List[str], List[str], SparsePlan]:
    """(PRUNE params, extra converter flags, notes, plan) for ``table`` on ``model``."""
    plan = plan_sparsity(model, table)
    notes = [f"sparse: MNN measures weights in blocks of {plan.block_oc} output channel(s) "
             f"({plan.algo}); a layer goes sparse above {threshold(plan.block_oc):.0%}"]
    notes += plan.notes
    return plan.params(), [], notes, plan


def _reason(lp: LayerPlan, conv, precision: str) -> Tuple[str, str]:
    """(how the layer runs, why) from the plan and the op MNN wrote."""
    rule = f"{lp.mnn_sparsity:.1%} {'>' if lp.predicted_sparse else '<='} {lp.threshold:.0%}"
    if conv is None:
        return "dense", "MNN wrote no convolution for this layer"
    if precision == "fp16" and not conv.sparse:
        return "dense", ("MNN's --fp16 turns weights into half floats before its sparsity "
                         "check, so nothing is marked sparse (use fp32 for sparse kernels)")
    if not conv.sparse:
        return "dense", f"MNN's sparsity {rule} (block {lp_block(conv, lp)})"
    if conv.op_type == "ConvolutionDepthwise":
        return "dense (stored sparse)", (f"{rule}; MNN's depthwise kernel expands sparse "
                                         "weights to dense at load")
    if conv.op_type.startswith("Deconvolution"):
        return "dense", "MNN has no sparse transposed convolution"
    if conv.storage == "quantized":
        return "dense (stored sparse)", (
            f"{rule}; int8 weights: MNN codes the zeros into its quantized storage (smaller "
            "file) but picks its sparse kernel only for float sparse coding (fp32 weights)")
    if conv.storage != "sparse":
        return "dense", f"{rule}, but MNN stored the weights dense"
    return "sparse", (f"{rule}: sparse kernel (block {conv.block_oc}) when MNN computes fp32 on "
                      "AVX2/AVX-512 or ARM")


def lp_block(conv, lp: LayerPlan) -> str:
    return str(conv.block_oc) if conv is not None and conv.block_oc else "model's"


def layer_report(mnn_path: str, plan: SparsePlan, precision: str = "fp32") -> List[Dict[str, Any]]:
    """One row per table layer: MNN's sparsity, the threshold, what the file holds, and why."""
    from converters.mnn.model_reader import read_convolutions

    convs = read_convolutions(mnn_path)
    by_name = {c.name: c for c in convs}
    for c in convs:
        for o in c.outputs:
            by_name.setdefault(o, c)
    rows = []
    for lp in plan.layers:
        conv = by_name.get(lp.mnn_name)
        runs, why = _reason(lp, conv, precision)
        rows.append({"weight": lp.weight, "kind": lp.kind, "mnn_op": lp.mnn_name,
                     "pattern": lp.table_pattern, "zeros": round(lp.zeros, 4),
                     "mnn_sparsity": round(lp.mnn_sparsity, 4), "threshold": lp.threshold,
                     "marked_sparse": bool(conv is not None and conv.sparse),
                     "stored": conv.storage if conv is not None else None,
                     "mnn_nnz": conv.nnz if conv is not None else None,
                     "runs": runs, "why": why})
    return rows


def summary_notes(rows: List[Dict[str, Any]]) -> List[str]:
    sparse = [r["weight"] for r in rows if r["runs"] == "sparse"]
    dense = [r for r in rows if r["runs"] != "sparse"]
    notes = [f"sparse layers: {len(sparse)} of {len(rows)} table layers run MNN's sparse kernel"]
    for r in dense[:8]:
        notes.append(f"  dense: {r['weight']} ({r['kind']}): {r['why']}")
    if len(dense) > 8:
        notes.append(f"  ... and {len(dense) - 8} more dense layers (details['sparsity'])")
    return notes


def report(mnn_path: Any, plan: SparsePlan, precision: str, notes: List[str]) -> Dict[str, Any]:
    """The per-layer report for BackendResult.details (and its summary lines in ``notes``)."""
    rows = layer_report(str(mnn_path), plan, precision)
    notes.extend(summary_notes(rows))
    return {"algo": plan.algo, "block_oc": plan.block_oc,
            "threshold": threshold(plan.block_oc), "missing": plan.missing, "layers": rows}
