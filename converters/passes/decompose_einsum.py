"""Einsum as Transpose / Reshape / MatMul (or Mul) / ReduceSum, for every target.

TFLite has no einsum kernel, and MNN's handles fewer forms than exporters write
(``torch.einsum`` in attention, bilinear layers, mixers). Every einsum whose
operands index each axis once is a chain of pairwise contractions, left to right;
one contraction of A and B, whose indices are

* *batch*: in A, B and needed later (the output or a later operand),
* *contracted*: in A and B, not needed later,
* *A-only* / *B-only*: in one of them, needed later (an index in one operand only
  and needed nowhere is summed out first: ReduceSum),

is ``Transpose(A) -> [batch, A-only, contracted]``, ``Transpose(B) -> [batch,
contracted, B-only]``, both reshaped to ``[batch, M, K]`` / ``[batch, K, N]``,
one MatMul (a broadcasting Mul when nothing is contracted), and a Reshape back
to ``[batch, A-only, B-only]``; a final Transpose orders the output. Batch dims
stay separate (MatMul broadcasts them, as einsum does for ``...``); transposes
and reshapes that change nothing are not written. Constant operands (a weight)
are folded afterwards by constant folding.

An index repeated inside one operand (a diagonal, a trace: ``ii->i``) is first
taken out by multiplying with the identity on those two axes and summing one away.
Refused, with the node and equation in the pass report (and in a target's error
when it cannot take the Einsum itself): operand ranks unknown, a repeated index
of dynamic size, contracted dims of different sizes, and a merged dim that is
dynamic together with another one.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import onnx_ir as ir

from converters.passes.base import GraphPass, PassResult, Refusal, node_label
from converters.passes.graph_edit import Emitter
from edgert.op_registry import default_opset, is_default_domain

Dim = Union[int, str, None]


@dataclass
class Equation:
    inputs: List[str]       # one letter per axis, ellipsis expanded
    output: str


def parse(equation: str, ranks: Sequence[int]) -> Union[Equation, str]:
    """The equation with ``...`` expanded and the implicit output made explicit, or why not."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        return f"{len(terms)} operand terms for {len(ranks)} inputs"
    used = set(eq) - set(".,->")
    if not used <= set(string.ascii_letters):
        return "indices must be letters"
    fresh = [c for c in string.ascii_letters if c not in used]
    ell_n = max([r - (len(t) - 3) for t, r in zip(terms, ranks) if "..." in t] or [0])
    ell = "".join(fresh[:ell_n])
    inputs = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            n = r - (len(t) - 3)
            if n < 0:
                return f"term {t!r} has more indices than its operand's rank {r}"
            t = t.replace("...", ell[ell_n - n:])
        if len(t) != r:
            return f"term {t!r} has {len(t)} indices for an operand of rank {r}"
        inputs.append(t)
    if arrow:
        output = rhs.replace("...", ell)
    else:
        counts = {c: sum(t.count(c) for t in inputs) for c in used}
        output = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    if len(set(output)) != len(output) or not set(output) <= set("".join(inputs)):
        return f"output {rhs!r} repeats an index or names one no operand has"
    return Equation(inputs, output)


class _Refused(Exception):
    pass


@dataclass
class _Operand:
    value: ir.Value
    letters: str
    sizes: Dict[str, Dim]           # letter -> dim (int, symbolic name, or None)

    def dims(self, letters: str) -> List[Dim]:
        return [self.sizes[c] for c in letters]


def _operand(v: ir.Value, letters: str) -> _Operand:
    shape = list(v.shape) if v.shape is not None else [None] * len(letters)
    return _Operand(v, letters, {c: (d if isinstance(d, int) else
                                     (str(d) if d is not None else None))
                                 for c, d in zip(letters, shape)})


def _prod(dims: Sequence[Dim]) -> Dim:
    if all(isinstance(d, int) for d in dims):
        return int(np.prod(dims)) if dims else 1
    return dims[0] if len(dims) == 1 else None


class _Builder:
    """Emits the decomposition of one Einsum node."""

    def __init__(self, graph: ir.Graph, node: ir.Node, opset: int) -> None:
        self.e = Emitter(graph, node)
        self.opset = opset

    def transpose(self, a: _Operand, want: str) -> _Operand:
        if a.letters == want:
            return a
        perm = [a.letters.index(c) for c in want]
        v = self.e.op("Transpose", [a.value], {"perm": perm}, shape=a.dims(want))
        return _Operand(v, want, a.sizes)

    def reshape(self, v: ir.Value, have: List[Dim], n_batch: int, groups: List[Dim]
                ) -> ir.Value:
        """``v`` (shape ``have``) with its non-batch dims regrouped into ``groups``."""
        new = list(have[:n_batch]) + list(groups)
        if new == list(have):
            return v
        target = [0] * n_batch + [g if isinstance(g, int) else -1 for g in groups]
        if target.count(-1) > 1:
            raise _Refused("more than one dynamic dim would be merged by a Reshape")
        shape = self.e.const(np.array(target, np.int64), np.int64, "shape")
        return self.e.op("Reshape", [v, shape], shape=new)

    def reduce_sum(self, a: _Operand, gone: str) -> _Operand:
        if not gone:
            return a
        axes = [a.letters.index(c) for c in gone]
        rest = "".join(c for c in a.letters if c not in gone)
        if self.opset >= 13:
            ax = self.e.const(np.array(axes, np.int64), np.int64, "axes")
            v = self.e.op("ReduceSum", [a.value, ax], {"keepdims": 0}, shape=a.dims(rest))
        else:
            v = self.e.op("ReduceSum", [a.value], {"axes": axes, "keepdims": 0},
                          shape=a.dims(rest))
        return _Operand(v, rest, a.sizes)

    def diagonal(self, a: _Operand, shape: List[Dim]) -> _Operand:
        """An index repeated in one operand (a diagonal, a trace): multiply by the identity
        on those two axes and sum one of them away, until no index repeats."""
        letters, value, dims = a.letters, a.value, list(shape)
        for c in dict.fromkeys(letters):
            while letters.count(c) > 1:
                p, q = letters.index(c), letters.index(c, letters.index(c) + 1)
                n = dims[p]
                if not isinstance(n, int) or dims[q] != n:
                    raise _Refused(f"repeated index {c!r} needs equal static sizes")
                mask = np.eye(n, dtype=np.float32).reshape(
                    [n if k in (p, q) else 1 for k in range(len(letters))])
                dtype = value.dtype.numpy() if value.dtype is not None else np.float32
                value = self.e.op("Mul", [value, self.e.const(mask.astype(dtype), dtype)],
                                  shape=dims)
                letters, dims = letters[:q] + letters[q + 1:], dims[:q] + dims[q + 1:]
                axes = self.e.const(np.array([q], np.int64), np.int64, "axes")
                value = self.e.op("ReduceSum", [value, axes], {"keepdims": 0}, shape=dims) \
                    if self.opset >= 13 else self.e.op("ReduceSum", [value], {
                        "axes": [q], "keepdims": 0}, shape=dims)
        return _Operand(value, letters, a.sizes)

    def contract(self, a: _Operand, b: _Operand, keep: str) -> _Operand:
        la, lb = a.letters, b.letters
        batch = "".join(c for c in la if c in lb and c in keep)
        summed = "".join(c for c in la if c in lb and c not in keep)
        a_only = "".join(c for c in la if c not in lb)
        b_only = "".join(c for c in lb if c not in la)
        for c in summed:
            da, db = a.sizes[c], b.sizes[c]
            if isinstance(da, int) and isinstance(db, int) and da != db:
                raise _Refused(f"contracted index {c!r} has sizes {da} and {db}")
        out_batch = [y if x == 1 else x for x, y in zip(a.dims(batch), b.dims(batch))]
        sizes = {**b.sizes, **a.sizes, **dict(zip(batch, out_batch))}
        if summed and not a_only and not b_only:            # a dot product per batch entry
            a = self.transpose(a, batch + summed)
            b = self.transpose(b, batch + summed)
            prod = self.e.op("Mul", [a.value, b.value], shape=out_batch + a.dims(summed))
            return self.reduce_sum(_Operand(prod, batch + summed, sizes), summed)
        # leading dims of A stay unmerged when B has no batch dims (MatMul broadcasts B)
        lead, rows = ("", a_only) if batch or not a_only else (a_only[:-1], a_only[-1])
        nb = len(batch) + len(lead)
        a = self.transpose(a, batch + a_only + summed)
        b = self.transpose(b, batch + summed + b_only)
        m, k, n = _prod(a.dims(rows)), _prod(a.dims(summed)), _prod(b.dims(b_only))
        av = self.reshape(a.value, a.dims(a.letters), nb, [m, k])
        bv = self.reshape(b.value, b.dims(b.letters), len(batch), [k, n])
        head = out_batch + a.dims(lead)
        c = self.e.op("MatMul" if summed else "Mul", [av, bv], shape=head + [m, n])
        c = self.reshape(c, head + [m, n], nb, [sizes[ch] for ch in rows + b_only])
        return _Operand(c, batch + a_only + b_only, sizes)


REFUSAL_KEY = "edgert.decompose_einsum.refused"


def refusal_reason(node: ir.Node) -> Optional[str]:
    """Why this Einsum cannot be decomposed (None: as far as its equation says, it can):
    the pass's own reason, kept on the node, or the equation's."""
    if REFUSAL_KEY in node.metadata_props:
        return node.metadata_props[REFUSAL_KEY]
    eq = _equation(node)
    return eq if isinstance(eq, str) else None


def _equation(node: ir.Node) -> Union[Equation, str]:
    equation = node.attributes.get_string("equation", "")
    if any(v is None or v.shape is None for v in node.inputs):
        return f"equation {equation!r}: operand ranks unknown"
    eq = parse(equation, [len(v.shape) for v in node.inputs])
    return f"equation {equation!r}: {eq}" if isinstance(eq, str) else eq


def decompose(graph: ir.Graph, node: ir.Node, opset: int) -> Optional[str]:
    """Replace one Einsum node; returns the refusal reason instead when it cannot."""
    eq = _equation(node)
    if isinstance(eq, str):
        return eq
    bld = _Builder(graph, node, opset)
    operands = [_operand(v, t) for v, t in zip(node.inputs, eq.inputs)]
    try:
        operands = [bld.diagonal(o, [o.sizes[c] for c in o.letters] if v.shape is None else
                                 [d if isinstance(d, int) else None for d in v.shape])
                    for o, v in zip(operands, node.inputs)]
        cur = None
        for j, b in enumerate(operands):
            later = "".join(o.letters for o in operands[j + 1:]) + eq.output
            seen = cur.letters if cur is not None else ""
            b = bld.reduce_sum(b, "".join(c for c in b.letters if c not in seen + later))
            cur = b if cur is None else bld.contract(cur, b, later)
        cur = bld.transpose(cur, eq.output)
        out = cur.value
        if out is node.inputs[0]:
            out = bld.e.op("Identity", [out])
    except _Refused as exc:
        return f"equation {node.attributes.get_string('equation', '')!r}: {exc}"
    bld.e.replace([out])
    return None


class DecomposeEinsum(GraphPass):
    name = "decompose_einsum"
    description = "Einsum -> Transpose/Reshape + MatMul (+ ReduceSum), for every target"

    def run(self, model: ir.Model) -> PassResult:
        result = PassResult()
        opset = default_opset(model.opset_imports, 13)
        for node in list(model.graph):
            if node.op_type != "Einsum" or not is_default_domain(node.domain):
                continue
            reason = decompose(model.graph, node, opset)
            if reason:
                node.metadata_props[REFUSAL_KEY] = reason
                result.refusals.append(Refusal(self.name, node_label(node), "Einsum", reason))
            else:
                result.changes += 1
        if result.changes:
            result.notes.append(f"decomposed {result.changes} Einsum node(s)")
        return result
