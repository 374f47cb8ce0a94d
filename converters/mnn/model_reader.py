"""Read what MNN's converter wrote for each convolution of a .mnn file.

MNN prints nothing about sparsity (its ``AddSparseInfo`` message is commented
out), so the only first-hand answer to "which layers went sparse?" is the file:
a convolution MNN will run with its sparse kernel carries a ``sparseParameter``
(algorithm, ``sparseBlockOC``, ``NNZElement``, ``blockNumber``) and its weight as
``quanParameter`` with an ``index`` vector of the non-zeros. This reads those
fields with edgert's bounds-checked FlatBuffer reader (no generated MNN code is
shipped in the wheel).

Field ids follow MNN's schema (schema/default/MNN.fbs and CaffeOp.fbs, 3.x):
Net.oplists 3, Net.tensorName 7; Op.main 2, Op.name 3, Op.outputIndexes 4,
Op.type 5; Convolution2D.weight 1, bias 2, quanParameter 3, sparseParameter 5;
IDSTQuan.alpha 1, weightSize 12, index 13; SparseCommon.method 0, args 1;
Attribute.i 1, key 3.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

from edgert.flatbuf import root

CONV_TYPES = {12: "Convolution", 13: "ConvolutionDepthwise", 17: "Deconvolution",
              18: "DeconvolutionDepthwise"}
SPARSE_ALGOS = {0: "RANDOM", 1: "SIMD_OC"}


@dataclass
class MNNConv:
    """One convolution op as stored in a .mnn file."""

    name: str
    op_type: str
    outputs: List[str]
    weight_count: int                 # dense element count
    bias_count: int
    storage: str                      # "float", "sparse" (float values + index), "quantized"
    sparse: bool = False              # carries sparseParameter
    algo: Optional[str] = None
    sparse_args: Dict[str, int] = field(default_factory=dict)

    @property
    def nnz(self) -> Optional[int]:
        return self.sparse_args.get("NNZElement")

    @property
    def block_oc(self) -> Optional[int]:
        return self.sparse_args.get("sparseBlockOC")

    @property
    def sparsity(self) -> Optional[float]:
        """1 - NNZElement / weight count, MNN's own figure (blocks counted whole)."""
        if self.nnz is None or not self.weight_count:
            return None
        return 1.0 - self.nnz / self.weight_count


def read_convolutions(path: Union[str, Path]) -> List[MNNConv]:
    """Every Convolution / ConvolutionDepthwise / Deconvolution op of a .mnn file."""
    data = Path(path).read_bytes()
    net = root(data)
    names = net.strings(7)
    out: List[MNNConv] = []
    for op in net.tables(3):
        op_type = op.scalar(5, "i")
        if op_type not in CONV_TYPES:
            continue
        conv = op.table(2)
        if conv is None:
            continue
        outputs = [names[i] for i in op.scalars(4, "i") if 0 <= i < len(names)]
        bias = conv.vector_len(2, 4)
        quan = conv.table(3)
        sp = conv.table(5)
        weight = conv.vector_len(1, 4)
        storage = "float"
        if quan is not None:
            if quan.vector_len(13, 4):
                storage = "sparse"
                weight = quan.scalar(12, "I") or weight
            else:
                storage = "quantized"
        item = MNNConv(name=op.string(3) or "", op_type=CONV_TYPES[op_type], outputs=outputs,
                       weight_count=int(weight), bias_count=int(bias), storage=storage)
        if sp is not None:
            item.sparse = True
            item.algo = SPARSE_ALGOS.get(sp.scalar(0, "b"), str(sp.scalar(0, "b")))
            item.sparse_args = {a.string(3) or "": int(a.scalar(1, "i")) for a in sp.tables(1)}
        out.append(item)
    return out
