"""Validation of tables: the JSON Schema, the checks a schema cannot say, and the graph.

Three layers, each naming the tensor at fault:

1. the JSON Schema (``schema/*.schema.json``, checked with ``jsonschema``): shape
   of the document, types, enums, positive scales;
2. semantics the schema cannot express: NaN/inf scales (JSON Schema compares NaN
   as "not <= 0" and lets it through), zero points outside the dtype's range,
   per-channel lists of different lengths, ``bits`` wider than the dtype;
3. against a graph: per-channel scale counts that differ from the weight's
   channels, names the graph lacks (a warning list, not an error: tables are
   often shared by several variants of a model).

Every problem is collected, then raised together in one ``TableError``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from quant_tables.errors import TableError
from quant_tables.qparams import INT_DTYPES, dtype_range

_SCHEMA_DIR = Path(__file__).parent / "schema"
MAX_LISTED = 20


@lru_cache(maxsize=None)
def load_schema(name: str) -> Dict[str, Any]:
    with open(_SCHEMA_DIR / f"{name}.schema.json", "r", encoding="utf-8") as f:
        return json.load(f)


def raise_if(problems: List[str], where: str) -> None:
    if not problems:
        return
    shown = problems[:MAX_LISTED]
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise TableError(f"{where}: invalid table ({len(problems)} problem"
                     f"{'s' if len(problems) > 1 else ''}):\n  " + "\n  ".join(shown) + more)


def check_header(d: Dict[str, Any], fmt: str, version: int, where: str) -> None:
    """Format and version first: a newer table gets a clear message, not schema noise."""
    if d.get("format") != fmt:
        raise TableError(f"{where}: not an {fmt} file (format is {d.get('format')!r})")
    v = d.get("version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise TableError(f"{where}: version must be an integer, got {v!r}")
    if v > version:
        raise TableError(f"{where}: table version {v} is newer than this edgert reads "
                         f"(up to {version}); upgrade edgert")


def schema_problems(d: Dict[str, Any], schema_name: str) -> List[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema(schema_name))
    out = []
    for err in sorted(validator.iter_errors(d), key=lambda e: list(map(str, e.absolute_path))):
        path = _json_path(err.absolute_path)
        out.append(f"{path}: {_short(err)}")
    return out


def _json_path(parts: Iterable[Any]) -> str:
    s = ""
    for p in parts:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s == "" else f"[{p!r}]")
    return s.lstrip(".") or "(document)"


def _short(err) -> str:
    if err.validator == "oneOf" and err.context:
        # the branch that got furthest into the value says the most
        deepest = max(err.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        where = _json_path(list(deepest.absolute_path)[len(err.absolute_path):])
        return ("" if where == "(document)" else f"{where}: ") + _short(deepest)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed and not k.startswith("x-"))
        return (f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                f"(extension fields start with 'x-')")
    return err.message


def _check_scale(what: str, scale: Any, out: List[str]) -> None:
    vals = scale if isinstance(scale, list) else [scale]
    for i, s in enumerate(vals):
        # <= 0 is the schema's to report; NaN and infinity pass JSON Schema's comparisons
        if isinstance(s, float) and not math.isfinite(s):
            idx = f"[{i}]" if isinstance(scale, list) else ""
            kind = "NaN" if s != s else "infinite"
            out.append(f"{what}: scale{idx} is {kind} (must be a positive finite number)")


def _check_int_range(what: str, e: Dict[str, Any], out: List[str]) -> None:
    dtype = e.get("dtype")
    if dtype not in INT_DTYPES:
        return
    width = INT_DTYPES[dtype][1]
    bits = e.get("bits", width)
    if isinstance(bits, int) and bits > width:
        out.append(f"{what}: bits {bits} do not fit dtype {dtype} ({width} bits)")
        return
    lo, hi = dtype_range(dtype, bits if isinstance(bits, int) else None)
    qmin, qmax = e.get("quant_min", lo), e.get("quant_max", hi)
    for k, v in (("quant_min", qmin), ("quant_max", qmax)):
        if isinstance(v, int) and not lo <= v <= hi:
            out.append(f"{what}: {k} {v} is out of range for {bits}-bit {dtype} [{lo}, {hi}]")
    if isinstance(qmin, int) and isinstance(qmax, int) and qmin >= qmax:
        out.append(f"{what}: quant_min {qmin} must be below quant_max {qmax}")
    zps = e.get("zero_point")
    for z in zps if isinstance(zps, list) else [zps]:
        if not isinstance(z, int):
            continue
        if not lo <= z <= hi:
            out.append(f"{what}: zero_point {z} is out of range for {dtype} [{lo}, {hi}]")
            break
        if isinstance(qmin, int) and isinstance(qmax, int) and not qmin <= z <= qmax:
            out.append(f"{what}: zero_point {z} is outside [quant_min, quant_max] = [{qmin}, {qmax}]")
            break


def semantic_problems(d: Dict[str, Any]) -> List[str]:
    out: List[str] = []
    for name, e in (d.get("activations") or {}).items():
        if not isinstance(e, dict):
            continue
        what = f"activation {name!r}"
        _check_scale(what, e.get("scale"), out)
        _check_int_range(what, e, out)
        lo, hi = e.get("min"), e.get("max")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
            out.append(f"{what}: min {lo} is above max {hi}")
    for name, e in (d.get("weights") or {}).items():
        if not isinstance(e, dict):
            continue
        what = f"weight {name!r}"
        _check_scale(what, e.get("scale"), out)
        _check_int_range(what, e, out)
        scale, zp, axis = e.get("scale"), e.get("zero_point"), e.get("axis")
        n = len(scale) if isinstance(scale, list) else 1
        if isinstance(zp, list) and len(zp) not in (1, n):
            out.append(f"{what}: {len(zp)} zero points for {n} scales")
        if n > 1 and axis is None:
            out.append(f"{what}: {n} scales (per channel) need an axis")
        if e.get("symmetric") and INT_DTYPES.get(e.get("dtype"), (False,))[0]:
            if any(z != 0 for z in (zp if isinstance(zp, list) else [zp]) if isinstance(z, int)):
                out.append(f"{what}: symmetric signed weights need zero_point 0")
    return out


def validate_quant_dict(d: Dict[str, Any], where: str = "table") -> None:
    from quant_tables.table import FORMAT, VERSION

    if not isinstance(d, dict):
        raise TableError(f"{where}: a table is a JSON object, got {type(d).__name__}")
    check_header(d, FORMAT, VERSION, where)
    raise_if(schema_problems(d, "quant_table") + semantic_problems(d), where)


# ---- against a graph ---------------------------------------------------------

@dataclass
class GraphFacts:
    """What table checks need to know of a graph: value names and constant shapes."""

    values: Dict[str, Optional[Tuple[Any, ...]]]   # every non-constant tensor -> shape (or None)
    constants: Dict[str, Tuple[int, ...]]          # initializers / Constant outputs -> shape
    nodes: List[Tuple[str, str, List[str], List[str]]] = field(default_factory=list)


def graph_facts(model: Any) -> GraphFacts:
    """Facts from an ``onnx.ModelProto``, a path to one, or an ``onnx_ir.Model``."""
    if isinstance(model, (str, Path)):
        import onnx
        model = onnx.load(str(model), load_external_data=False)
    if hasattr(model, "graph") and hasattr(model.graph, "initializer"):
        return _facts_from_proto(model)
    return _facts_from_ir(model)


def _facts_from_proto(model) -> GraphFacts:
    g = model.graph
    consts = {i.name: tuple(i.dims) for i in g.initializer}
    values: Dict[str, Optional[Tuple[Any, ...]]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.name in consts:
            continue
        dims = vi.type.tensor_type.shape.dim if vi.type.HasField("tensor_type") else []
        values[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    nodes = []
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = tuple(a.t.dims)
            continue
        nodes.append((n.name, n.op_type, list(n.input), list(n.output)))
        for o in n.output:
            values.setdefault(o, None)
    return GraphFacts(values, consts, nodes)


def _facts_from_ir(model) -> GraphFacts:
    g = model.graph
    consts: Dict[str, Tuple[int, ...]] = {}
    values: Dict[str, Optional[Tuple[Any, ...]]] = {}
    for name, v in g.initializers.items():
        consts[name] = tuple(int(d) for d in v.shape) if v.shape is not None else ()
    for v in g.inputs:
        if v.name not in consts:
            values[v.name] = tuple(v.shape) if v.shape is not None else None
    nodes = []
    for n in g:
        outs = [o.name for o in n.outputs]
        if n.op_type == "Constant" and n.outputs[0].const_value is not None:
            consts[outs[0]] = tuple(n.outputs[0].const_value.shape)
            continue
        nodes.append((n.name or "", n.op_type, [i.name if i is not None else "" for i in n.inputs],
                      outs))
        for o in n.outputs:
            values[o.name] = tuple(o.shape) if o.shape is not None else None
    return GraphFacts(values, consts, nodes)


@dataclass
class GraphCheck:
    """Outcome of checking a table against a graph (errors raise; these are the rest)."""

    unknown_activations: List[str]
    unknown_weights: List[str]
    matched_activations: int
    matched_weights: int

    @property
    def unknown(self) -> List[str]:
        return self.unknown_activations + self.unknown_weights


def check_against_graph(table, model: Any, where: str = "table") -> GraphCheck:
    """Raise TableError for channel-count and kind mismatches; return the unknown names."""
    facts = model if isinstance(model, GraphFacts) else graph_facts(model)
    problems: List[str] = []
    unknown_w: List[str] = []
    for name, w in table.weights.items():
        if name not in facts.constants:
            if name in facts.values:
                problems.append(f"weight {name!r} is not a constant in the graph "
                                f"(it is computed at run time)")
            else:
                unknown_w.append(name)
            continue
        shape = facts.constants[name]
        if w.axis is not None:
            rank = len(shape)
            if not -rank <= w.axis < rank:
                problems.append(f"weight {name!r}: axis {w.axis} is out of range for its "
                                f"shape {list(shape)}")
                continue
            ch = shape[w.axis]
            if len(w.scale) not in (1, ch):
                problems.append(f"weight {name!r}: {len(w.scale)} scales but the graph's "
                                f"weight has {ch} channels on axis {w.axis} (shape {list(shape)})")
    unknown_a = []
    for name in table.activations:
        if name in facts.values:
            continue
        if name in facts.constants:
            problems.append(f"activation {name!r} is a constant in the graph; "
                            f"list it under weights")
        else:
            unknown_a.append(name)
    total = len(table.activations) + len(table.weights)
    known = total - len(unknown_a) - len(unknown_w)
    if problems and total and known < total / 2:
        # a mismatch among mostly unknown names: generic names (dynamo's val_12) that
        # happen to exist in another model's graph, not an error in this model's table
        source = getattr(getattr(table, "provenance", None), "source", "") or ""
        problems.insert(0, f"only {known} of the table's {total} tensor names are in this "
                           f"graph: it looks made for another model"
                           + (f" (it was made from {source!r})" if source else ""))
    raise_if(problems, where)
    return GraphCheck(sorted(unknown_a), sorted(unknown_w),
                      len(table.activations) - len(unknown_a), len(table.weights) - len(unknown_w))
