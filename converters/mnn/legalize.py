"""ONNX forms that are valid but that MNN's converter mishandles, rewritten into
equivalent forms it takes. Applied to the MNN backend's own copy of the graph, in
every graph (an ``If`` branch or a ``Loop`` body as well as the main graph).

- LSTM/GRU/RNN with fewer than all outputs, or with an output left unnamed: the
  dynamo exporter emits an LSTM with only ``Y``; MNN's converter (3.6) then
  segfaults while building its While-loop RNN, and inside an ``If`` branch it maps
  an LSTM's outputs by position among the *named* ones (so ``Y_h`` came back as
  the whole sequence ``Y``). Giving the node all its outputs, named and unused,
  changes nothing numerically and converts cleanly.
- Value names unique over the whole model: MNN names tensors model-wide, while
  onnx-ir names a value left unnamed in each subgraph afresh (two branches each
  with a ``v``), and MNN then reads one branch's tensor for the other's.
- Normalizations with no ``epsilon`` attribute get ONNX's default written out: MNN's
  converter takes 0 for a missing one (BatchNormalization on a channel of variance 0.0117
  was off by 4e-4 relative; a variance of 0 gives inf).
- Softmax/LogSoftmax with no ``axis`` attribute (opset 13+) get ``axis=-1``, the
  default: MNN's converter segfaults on a LogSoftmax without one.
- Pools with no ``strides`` (``pads``) attribute get the default, 1 (0) per axis: MNN's
  runtime divides by the missing stride (SIGFPE) or spins on it (3-D pools without pads).
- A value computed in an enclosing graph and read inside a subgraph is read through
  a ``Reshape(v, [0, ..., 0])`` (a copy of its own shape) placed in the subgraph:
  MNN hands captured tensors to a subgraph in its internal layout, and an LSTM that
  read one directly took the sequence axis for the batch (Y_h came back [1, T, H]).
- A MatMul/Gemm with a constant weight whose output is a graph output *and* is read by
  other nodes gets a twin that feeds those nodes, so the graph output has a producer of
  its own: MNN's converter turns such a MatMul into a 1x1 convolution between
  reshapes and then hands the graph output the result of the elementwise op that reads
  it (``return logits, logits.sigmoid()`` gave the sigmoid as ``logits``; Exp, Tanh,
  Neg, Relu and Clip all did, at MNN 3.6, for 2-D and 3-D inputs; a Conv, or a MatMul of
  two activations, did not). The twin costs one more matmul of that layer; verification
  measured the wrong outputs at cosine -1 to 0.94 before.
- The same fault with a Reshape/Flatten/Squeeze/Unsqueeze writing the graph output (a
  flattened feature returned beside its sigmoid: cosine 0.27-0.96): MNN moves the reshape
  past the elementwise op that reads it. Each such reader is moved before the reshape
  (``U(Reshape(a))`` -> ``Reshape(U(a))``, the same values), so nothing reads the output.
- A Relu reading a graph output written by an Add/Sub/Mul/Div or by another Relu/Clip (a
  Conv's fused Relu) is fused by MNN into that op, which takes the output's name with it:
  the model failed to load ("Can't find output y"). Such a Relu is written as Max(x, 0).
- Conv/ConvTranspose with no ``kernel_shape`` attribute (it is optional: the weight
  has it) get it written out: MNN's runtime failed every 3-D Conv without it ("call to
  readMap meet a error").
- A Relu or Clip that follows a 3-D Conv and is a graph output is written as Max (and
  Min): MNN's converter fuses it into the Conv3D and loses the output's name
  ("PipelineModule:: Can't find output y"); Max(x, 0) is ReLU exactly and is not fused.
- A graph output written by a 1-D Conv (or by a Relu/Clip/LeakyRelu MNN fuses into one)
  is written by a ``Reshape(v, [0, 0, 0])`` instead: MNN's converter lowers the 1-D Conv
  to Unsqueeze, Conv2D, Squeeze and drops that Squeeze at a graph output, so the file's
  output was [N, C, L, 1] where the source's is [N, C, L].
"""
from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
import onnx_ir as ir

from converters.passes.subgraphs import (all_graphs, captured_values, has_subgraphs,
                                         replace_in_graph, subgraphs_of)
from edgert.op_registry import OpRegistry, register_all

_RNN_OUTPUTS: OpRegistry[int] = OpRegistry("recurrent op output count")
register_all(_RNN_OUTPUTS, {"LSTM": 3, "GRU": 2, "RNN": 2}, source=__name__)


def _all_nodes(model: ir.Model) -> Iterator[ir.Node]:  # every graph's nodes
    yield from ir.traversal.RecursiveGraphIterator(model.graph)


def _complete(node: ir.Node, want: int) -> None:
    """Replace ``node`` by a copy with ``want`` named outputs (the extra ones unused)."""
    graph = node.graph
    base = node.name or next((o.name for o in node.outputs if o is not None and o.name),
                             node.op_type)
    new = ir.Node(node.domain, node.op_type, list(node.inputs),
                  attributes=list(node.attributes.values()), num_outputs=want,
                  name=node.name, version=node.version)
    graph.insert_before(node, new)
    for i, out in enumerate(new.outputs):
        old = node.outputs[i] if i < len(node.outputs) else None
        if old is None:
            out.name = f"{base}_out{i}"
            continue
        out.shape, out.type = old.shape, old.type
        name = old.name
        old.replace_all_uses_with(out, replace_graph_outputs=True)
        old.name = None
        out.name = name or f"{base}_out{i}"
    graph.remove(node, safe=True)


def complete_rnn_outputs(model: ir.Model) -> List[str]:
    """Give every LSTM/GRU/RNN (in any graph) all its outputs, each named. Returns the
    names of the nodes changed."""
    changed = []
    for node in list(_all_nodes(model)):
        want = _RNN_OUTPUTS.of_node(node)
        if not want:
            continue
        if len(node.outputs) >= want and all(o.name for o in node.outputs[:want]):
            continue
        changed.append(node.name or node.op_type)
        _complete(node, want)
    return changed


def unique_value_names(model: ir.Model) -> int:
    """Rename values so that no two in the model share a name (main graph inputs and
    outputs keep theirs). Returns how many were renamed."""
    seen: Set[str] = set()
    renamed = 0
    main = model.graph
    for v in list(main.inputs) + list(main.outputs):
        if v.name:
            seen.add(v.name)

    def claim(v: ir.Value) -> None:
        nonlocal renamed
        if v is None or v in fixed:
            return
        fixed.add(v)
        name = v.name or "v"
        if name in seen or not v.name:
            k = 1
            while f"{name}_{k}" in seen:
                k += 1
            name = f"{name}_{k}"
            v.name = name
            renamed += 1
        seen.add(name)

    fixed: Set[ir.Value] = set(list(main.inputs) + list(main.outputs))
    for v in main.initializers.values():
        claim(v)
    for graph in all_graphs(main):
        for v in list(graph.inputs) + list(graph.initializers.values()):
            claim(v)
        for node in graph:
            for v in node.outputs:
                claim(v)
    return renamed


def pin_captured_values(model: ir.Model) -> int:
    """Read every non-constant value a subgraph captures through a shape-preserving
    Reshape inside that subgraph. Returns how many were pinned."""
    pinned = 0
    for graph in list(all_graphs(model.graph)):
        for node in list(graph):
            for sub in subgraphs_of(node).values():
                pinned += _pin(sub)
    return pinned


def _own_shape(graph: ir.Graph, name: str, rank: int) -> ir.Value:
    """An initializer of ``graph`` for ``Reshape(v, [0] * rank)``: v's own shape, a copy
    of it that MNN's converter keeps."""
    shape = ir.Value(name=name, const_value=ir.tensor(np.zeros(rank, np.int64)))
    shape.shape, shape.dtype = ir.Shape([rank]), ir.DataType.INT64
    graph.register_initializer(shape)
    return shape


def _pin(sub: ir.Graph) -> int:
    n = 0
    for v in captured_values(sub):
        if v.shape is None:
            continue
        shape = _own_shape(sub, f"{v.name}_keep_shape", len(v.shape))
        node = ir.Node("", "Reshape", [v, shape], name=f"{v.name}_in_{sub.name or 'subgraph'}")
        out = node.outputs[0]
        out.name, out.shape, out.type = f"{v.name}_pinned", v.shape, v.type
        replace_in_graph(sub, v, out)
        node.replace_input_with(0, v)        # the Reshape itself reads the outer value
        if len(sub):
            sub.insert_before(sub.node(0), node)
        else:
            sub.append(node)
        n += 1
    return n


_POOLS = ("MaxPool", "AveragePool", "LpPool")


def default_pool_strides(model: ir.Model) -> int:
    """Give every pool without ``strides`` (or ``pads``) its default: 1 (0) per axis."""
    n = 0
    for node in _all_nodes(model):
        k = node.attributes.get_ints("kernel_shape", None) if node.op_type in _POOLS else None
        if not k:
            continue
        changed = False
        if node.attributes.get("strides") is None:
            node.attributes["strides"] = ir.AttrInt64s("strides", [1] * len(k))
            changed = True
        if node.attributes.get("pads") is None and \
                node.attributes.get_string("auto_pad", "NOTSET") == "NOTSET":
            node.attributes["pads"] = ir.AttrInt64s("pads", [0] * 2 * len(k))
            changed = True
        n += changed
    return n


_EPSILON = {"BatchNormalization": 1e-5, "InstanceNormalization": 1e-5,
            "LayerNormalization": 1e-5, "GroupNormalization": 1e-5}


def explicit_epsilon(model: ir.Model) -> int:
    """Write ONNX's default ``epsilon`` on normalizations that rely on it."""
    n = 0
    for node in _all_nodes(model):
        eps = _EPSILON.get(node.op_type)
        if eps is not None and node.attributes.get("epsilon") is None:
            node.attributes["epsilon"] = ir.AttrFloat32("epsilon", eps)
            n += 1
    return n


def explicit_softmax_axis(model: ir.Model) -> int:
    """Write the default ``axis=-1`` on Softmax/LogSoftmax nodes that rely on it."""
    from edgert.op_registry import default_opset

    if default_opset(model.opset_imports, 13) < 13:
        return 0
    n = 0
    for node in _all_nodes(model):
        if node.op_type in ("Softmax", "LogSoftmax") and node.attributes.get("axis") is None:
            node.attributes["axis"] = ir.AttrInt64("axis", -1)
            n += 1
    return n


_CONV_LIKE = ("MatMul", "Gemm")
# MNN moves these past an elementwise op that reads their output, and the graph output
# they wrote comes back holding that op's result (a Flatten/Reshape/Squeeze head output
# read by a Sigmoid: cosine 0.27-0.96 against the source)
_LAYOUT_ONLY = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
# elementwise ops of one data input (the rest constants): they commute with a layout op
_ELEMENTWISE_UNARY = ("Relu", "Exp", "Tanh", "Sigmoid", "Neg", "Abs", "Clip", "LeakyRelu",
                      "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Log", "Sqrt",
                      "Erf", "Sin", "Cos", "Reciprocal", "Floor", "Ceil", "Round", "Sign")
# MNN fuses a Relu that reads their output into them, taking the graph output's name with
# it ("PipelineModule:: Can't find output y"): the model does not load
_RELU_FUSERS = ("Add", "Sub", "Mul", "Div", "Relu", "Clip")


def _is_constant(v: Optional[ir.Value]) -> bool:
    return v is not None and (v.const_value is not None or (
        v.producer() is not None and v.producer().op_type == "Constant"))


def _standard(node: ir.Node) -> bool:
    return node.domain in ("", "ai.onnx")


def _graph_output_writers(model: ir.Model, op_types: Sequence[str]
                          ) -> Iterator[Tuple[ir.Graph, ir.Node, ir.Value]]:
    """(graph, node, its first output) for every standard node of ``op_types`` whose first
    output is an output of its graph, in any graph; the nodes are listed before the first
    is yielded, so the caller may rewrite the graph."""
    for graph in list(all_graphs(model.graph)):
        outputs = set(graph.outputs)
        for node in [n for n in graph if n.op_type in op_types and _standard(n) and
                     n.outputs and n.outputs[0] in outputs]:
            yield graph, node, node.outputs[0]


def _copy(node: ir.Node, inputs: List[Optional[ir.Value]], suffix: str) -> ir.Node:
    """``node``'s op and attributes on ``inputs``, named with ``suffix``."""
    return ir.Node(node.domain, node.op_type, inputs, attributes=list(node.attributes.values()),
                   name=f"{node.name or node.outputs[0].name}{suffix}", version=node.version)


def own_matmul_outputs(model: ir.Model) -> List[str]:
    """Give each constant-weight MatMul/Gemm whose output is both a graph output and read
    by other nodes a twin (the same inputs and attributes) that those nodes read instead.
    Returns the names of the graph outputs given their own producer."""
    done = []
    for graph, node, out in _graph_output_writers(model, _CONV_LIKE):
        if len(node.inputs) < 2 or not _is_constant(node.inputs[1]) or not out.uses():
            continue
        twin = _copy(node, list(node.inputs), "__edgert_twin")
        twin_out = twin.outputs[0]
        twin_out.name = f"{out.name}__edgert_twin"
        twin_out.shape, twin_out.type = out.shape, out.type
        graph.insert_after(node, twin)
        for user, index in list(out.uses()):
            user.replace_input_with(index, twin_out)
        done.append(out.name or "?")
    return done


def _scalar(graph: ir.Graph, name: str, value: Any) -> ir.Value:
    """A float32 scalar initializer of ``graph``."""
    c = ir.Value(name=name, const_value=ir.tensor(np.asarray(value, np.float32).reshape(())))
    c.shape, c.dtype = ir.Shape([]), ir.DataType.FLOAT
    graph.register_initializer(c)
    return c


def _take_over(old: ir.Value, new: ir.Value) -> None:
    """``new`` replaces ``old`` everywhere (graph outputs too), with its name and type."""
    name = old.name
    new.type, new.shape = old.type, old.shape
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    old.name = None
    new.name = name


def unary_before_layout_outputs(model: ir.Model) -> List[str]:
    """A layout op (Reshape/Flatten/Squeeze/Unsqueeze) writing a graph output that only
    elementwise ops of one data input read: each reader is moved before the layout op
    (``z = U(Reshape(a))`` becomes ``z = Reshape(U(a))``, the same values), so nothing
    reads the graph output and MNN has nothing to move. Returns the outputs kept."""
    done = []
    for graph, node, out in _graph_output_writers(model, _LAYOUT_ONLY):
        readers = [user for user, _ in out.uses()]
        if not readers or any(
                r.op_type not in _ELEMENTWISE_UNARY or not _standard(r) or
                r.inputs[0] is not out or r.graph is not graph or
                not all(_is_constant(v) for v in r.inputs[1:] if v is not None)
                for r in readers):
            continue
        a = node.inputs[0]
        for r in readers:
            u = _copy(r, [a] + list(r.inputs[1:]), "__before_layout")
            u.outputs[0].name = f"{r.outputs[0].name}__before_layout"
            u.outputs[0].type, u.outputs[0].shape = r.outputs[0].type, a.shape
            graph.insert_before(r, u)
            lay = _copy(node, [u.outputs[0]] + list(node.inputs[1:]), "__after_unary")
            graph.insert_after(u, lay)
            _take_over(r.outputs[0], lay.outputs[0])
            graph.remove(r, safe=True)
        done.append(out.name or "?")
    return done


def relu_readers_as_max(model: ir.Model) -> List[str]:
    """A Relu reading a graph output that an op MNN fuses Relu into wrote (an Add, a Mul,
    a Conv's Relu...) becomes Max(x, 0), the same values, which MNN does not fuse.
    Returns the graph outputs whose readers changed."""
    done = []
    for graph, _, out in _graph_output_writers(model, _RELU_FUSERS):
        if out.dtype != ir.DataType.FLOAT:
            continue
        relus = [u for u, _ in out.uses() if u.op_type == "Relu" and _standard(u)]
        for r in relus:
            zero = _scalar(graph, f"{r.name or r.outputs[0].name}__zero", 0.0)
            mx = ir.Node("", "Max", [out, zero], name=f"{r.name or 'relu'}__as_max")
            graph.insert_before(r, mx)
            _take_over(r.outputs[0], mx.outputs[0])
            graph.remove(r, safe=True)
        if relus:
            done.append(out.name or "?")
    return done


def explicit_kernel_shape(model: ir.Model) -> int:
    """Write ``kernel_shape`` (the weight's spatial dims) on Conv/ConvTranspose nodes
    that rely on the weight for it."""
    n = 0
    for node in _all_nodes(model):
        if node.op_type not in ("Conv", "ConvTranspose") or not _standard(node):
            continue
        if node.attributes.get("kernel_shape") is not None or len(node.inputs) < 2:
            continue
        w = node.inputs[1]
        dims = list(w.shape) if w is not None and w.shape is not None else []
        if len(dims) < 3 or not all(isinstance(d, int) for d in dims[2:]):
            continue
        node.attributes["kernel_shape"] = ir.AttrInt64s("kernel_shape", [int(d) for d in dims[2:]])
        n += 1
    return n


def _conv3d_output(v: Optional[ir.Value]) -> bool:
    node = v.producer() if v is not None else None
    if node is None or node.op_type != "Conv" or len(node.inputs) < 2:
        return False
    w = node.inputs[1]
    return w is not None and w.shape is not None and len(w.shape) == 5


def _activation_bounds(node: ir.Node) -> Optional[List[Optional[np.ndarray]]]:
    """(lo, hi) of a Relu/Clip as float32 scalars (None: unbounded); None when a bound
    is not a constant."""
    if node.op_type == "Relu":
        return [np.zeros((), np.float32), None]
    bounds: List[Optional[np.ndarray]] = []
    for k, attr in ((1, "min"), (2, "max")):
        v = node.inputs[k] if len(node.inputs) > k else None
        if v is None:
            a = node.attributes.get(attr)      # Clip before opset 11
            bounds.append(None if a is None else np.array(a.as_float(), np.float32))
            continue
        t = ir.convenience.get_const_tensor(v)
        if t is None:
            return None
        bounds.append(np.asarray(t.numpy(), np.float32).reshape(()))
    return bounds


def unfused_conv3d_activations(model: ir.Model) -> List[str]:
    """Relu/Clip right after a 3-D Conv, written to a graph output: Max(x, lo) (and
    Min(., hi)), which MNN does not fold into the Conv3D. Returns the outputs changed."""
    done = []
    for graph, node, out in _graph_output_writers(model, ("Relu", "Clip")):
        x = node.inputs[0]
        bounds = _activation_bounds(node) if _conv3d_output(x) else None
        if bounds is None or x.dtype != ir.DataType.FLOAT:
            continue
        steps = [(op, b) for op, b in (("Max", bounds[0]), ("Min", bounds[1])) if b is not None]
        if not steps:
            continue
        base, out_name = node.name or out.name or "act", out.name
        for i, (op, b) in enumerate(steps):
            c = _scalar(graph, f"{base}_{op.lower()}_bound", b)
            new = ir.Node("", op, [x, c], name=f"{base}_{op.lower()}")
            graph.insert_before(node, new)
            y = new.outputs[0]
            if i == len(steps) - 1:
                _take_over(out, y)
            else:
                y.shape, y.type = out.shape, out.type
                y.name = f"{base}_{op.lower()}_out"
            x = y
        graph.remove(node, safe=True)
        done.append(out_name or base)
    return done


_CONV = ("Conv", "ConvTranspose")
# activations MNN fuses into the convolution before them
_FUSED_INTO_CONV = ("Relu", "Clip", "LeakyRelu")


def _conv1d_output(v: Optional[ir.Value]) -> bool:
    """Written by a 1-D Conv/ConvTranspose (3-D weight), or by an activation MNN fuses
    into one."""
    node = v.producer() if v is not None else None
    if node is not None and node.op_type in _FUSED_INTO_CONV and _standard(node):
        node = node.inputs[0].producer() if node.inputs and node.inputs[0] is not None \
            else None
    if node is None or node.op_type not in _CONV or not _standard(node) or \
            len(node.inputs) < 2 or node.inputs[1] is None:
        return False
    w = node.inputs[1].shape
    return w is not None and len(w) == 3


def reshaped_conv1d_outputs(model: ir.Model) -> List[str]:
    """A graph output written by a 1-D Conv (or its fused activation) is read through a
    Reshape(v, [0, 0, 0]), which writes the output instead: MNN's converter lowers a 1-D
    Conv to Unsqueeze, Conv2D, Squeeze and drops that Squeeze when the Conv writes a graph
    output, so the file's output came out [N, C, L, 1] where the source's is [N, C, L]
    (any Conv1d at the end of a model: an audio model, a vocoder). Returns the outputs."""
    done = []
    for graph, node, out in _graph_output_writers(model, _CONV + _FUSED_INTO_CONV):
        if not _conv1d_output(out):
            continue
        shape = _own_shape(graph, f"{out.name}_keep_shape", 3)
        keep = ir.Node("", "Reshape", [out, shape], name=f"{out.name}_keep")
        graph.insert_after(node, keep)
        name = out.name
        _take_over(out, keep.outputs[0])          # the Reshape writes the output, by name
        keep.replace_input_with(0, out)           # and itself reads the Conv
        out.name = f"{name}__conv1d"
        done.append(name or "?")
    return done


def legalize(model: ir.Model) -> List[str]:
    """Apply every MNN legalization; returns human-readable notes."""
    notes = []
    kept = reshaped_conv1d_outputs(model)
    if kept:
        notes.append(f"read {len(kept)} graph output(s) written by a 1-D Conv through a "
                     f"shape-keeping Reshape (MNN's converter drops the Squeeze of its 1-D "
                     f"Conv lowering there, adding a trailing 1 dim): {', '.join(kept)}")
    eps = explicit_epsilon(model)
    if eps:
        notes.append(f"wrote ONNX's default epsilon on {eps} normalization(s) (MNN's converter "
                     "takes 0 for a missing one)")
    if explicit_softmax_axis(model):
        notes.append("wrote the default axis=-1 on Softmax/LogSoftmax (MNN's converter "
                     "crashes on a LogSoftmax without it)")
    strided = default_pool_strides(model)
    if strided:
        notes.append(f"gave {strided} pool(s) their default strides and pads (MNN's runtime "
                     "crashes or hangs on a pool without them)")
    kernels = explicit_kernel_shape(model)
    if kernels:
        notes.append(f"wrote kernel_shape on {kernels} Conv/ConvTranspose node(s) (MNN's "
                     "runtime fails a 3-D Conv without it)")
    unfused = unfused_conv3d_activations(model)
    if unfused:
        notes.append(f"wrote {len(unfused)} Relu/Clip after a 3-D Conv at a graph output as "
                     f"Max/Min (MNN fuses them and loses the output): {', '.join(unfused)}")
    twins = own_matmul_outputs(model)
    if twins:
        notes.append(f"computed {len(twins)} MatMul/Gemm graph output(s) read by other nodes "
                     "twice, once for the output alone (MNN's converter hands such an output "
                     f"the result of the op that reads it): {', '.join(twins)}")
    moved = unary_before_layout_outputs(model)
    if moved:
        notes.append(f"moved the elementwise readers of {len(moved)} reshaped graph output(s) "
                     "before the reshape (MNN's converter hands such an output the result of "
                     f"its reader): {', '.join(moved)}")
    maxed = relu_readers_as_max(model)
    if maxed:
        notes.append(f"wrote the Relu reading {len(maxed)} graph output(s) as Max(x, 0) (MNN "
                     f"fuses it into their producer and loses the output): {', '.join(maxed)}")
    rnn = complete_rnn_outputs(model)
    if rnn:
        notes.append(f"gave {len(rnn)} RNN node(s) all their outputs (MNN's converter "
                     f"crashes otherwise): {', '.join(rnn)}")
    if has_subgraphs(model):
        pinned = pin_captured_values(model)
        if pinned:
            notes.append(f"{pinned} value(s) read inside If/Loop subgraphs are read through "
                         "a shape-keeping Reshape (MNN passes captured tensors in its own "
                         "layout)")
        n = unique_value_names(model)
        if n:
            notes.append(f"renamed {n} value(s) so that every name is unique over the "
                         "model's graphs (MNN names tensors model-wide)")
    return notes
