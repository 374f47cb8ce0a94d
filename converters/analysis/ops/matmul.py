"""Matrix products: Gemm, MatMul (with batch broadcasting), MatMulInteger,
QLinearMatMul, Einsum.

MatMul: every output element is a K-long dot product, so MACs = numel(Y) * K
with K = A.shape[-1]; this holds for batched, broadcast and 1-D operands alike.
Gemm: MACs = M * N * K; FLOPs = 2 * MACs, + M*N for alpha != 1, + numel(C) for
beta not in {0, 1} and + M*N to add C. Einsum with two operands: MACs = the
product of the sizes of every index label (each combination of labels is one
multiply-accumulate); more operands are counted as one contraction per extra
operand over all labels (noted).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from converters.analysis.cost import OpCost, prod
from converters.analysis.graph import NodeView
from converters.analysis.ops.common import has_input, numel_of, shape_of
from converters.analysis.registry import register

_A_INPUT = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0}


@register("MatMul", "MatMulInteger", "QLinearMatMul")
def matmul(node: NodeView) -> OpCost:
    a = shape_of(node.input(_A_INPUT[node.op_type]), "A")
    macs = numel_of(node.output(0), "output") * a[-1]
    return OpCost(flops=2 * macs, macs=macs)


@register("Gemm")
def gemm(node: NodeView) -> OpCost:
    a = shape_of(node.input(0), "A")
    y = shape_of(node.output(0), "output")
    k = a[0] if node.attr("transA", 0) else a[1]
    mn = prod(y)
    macs = mn * k
    flops = 2 * macs
    if float(node.attr("alpha", 1.0)) != 1.0:
        flops += mn
    beta = float(node.attr("beta", 1.0))
    biased = has_input(node, 2) and beta != 0.0
    if biased:
        flops += mn + (numel_of(node.input(2), "C") if beta != 1.0 else 0)
    return OpCost(flops=flops, macs=macs, bias_inputs=(2,) if biased else ())


def _einsum_labels(equation: str, shapes: List[Tuple[int, ...]]) -> Tuple[List[str], str, Dict[str, int]]:
    """Operand label strings (ellipsis expanded to digit labels), output labels, sizes."""
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    sizes: Dict[str, int] = {}
    expanded: List[str] = []
    ell_rank = 0
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n = len(shape) - (len(term) - 3)
            ell_rank = max(ell_rank, n)
            ell = "".join(str(9 - i) for i in range(n))[::-1]   # right-aligned, broadcast
            term = term.replace("...", ell)
        expanded.append(term)
        for label, dim in zip(term, shape):
            sizes[label] = max(sizes.get(label, 1), int(dim))
    if "->" not in eq:
        counts = {c: sum(t.count(c) for t in expanded) for c in sizes}
        rhs = "".join(sorted(c for c, n in counts.items() if n == 1))
    return expanded, rhs, sizes


@register("Einsum")
def einsum(node: NodeView) -> OpCost:
    shapes = [shape_of(t, "operand") for t in node.inputs if t is not None]
    terms, out, sizes = _einsum_labels(node.attr("equation", b"").decode()
                                       if isinstance(node.attr("equation"), bytes)
                                       else str(node.attr("equation")), shapes)
    if len(shapes) == 1:
        n_in, n_out = prod(shapes[0]), prod(sizes[c] for c in out if c in sizes)
        if sorted(terms[0]) == sorted(out):
            return OpCost()                    # a transpose
        return OpCost(flops=n_in - n_out)      # a reduction: one add per dropped element
    total = prod(sizes.values())
    macs = total * (len(shapes) - 1)
    notes = [] if len(shapes) == 2 else [
        f"Einsum with {len(shapes)} operands counted as {len(shapes) - 1} full contractions"]
    return OpCost(flops=2 * macs, macs=macs, notes=notes)
