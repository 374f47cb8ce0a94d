"""Small ONNX models with control flow (seeded weights), for the If/Loop tests.

``vad_like``: the shape of Silero VAD's export — an ``If`` on a scalar int64 input
``sr`` (``sr == 16000``) choosing between two recurrent models that carry a state
in and out (LSTM in one branch, GRU in the other), with Identity nodes forwarding
values of the outer graph as its exporter writes them (the form that made the
``remove_dead`` pass fail). ``loop_*``: an ONNX ``Loop`` whose trip count is an
input (or a constant), with carried values, a scan output and a captured value.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

OPSET = 17
HIDDEN, FEAT, STEPS = 8, 4, 5


def _w(rng, name, shape, scale=0.4):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _model(graph, opset: int = OPSET) -> onnx.ModelProto:
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)],
                     producer_name="edgert-tests")
    m.ir_version = 8
    return m


def _state_index(tag: str) -> list:
    """The constant indices both branches slice (h, c) out of ``state`` with."""
    return [numpy_helper.from_array(np.array([0], np.int64), f"{tag}_i0"),
            numpy_helper.from_array(np.array([1], np.int64), f"{tag}_i1"),
            numpy_helper.from_array(np.array([2], np.int64), f"{tag}_i2"),
            numpy_helper.from_array(np.array([0], np.int64), f"{tag}_ax0")]


def _state_slices(tag: str) -> list:
    """h0 = state[0], c0 = state[1]."""
    return [h.make_node("Slice", ["state", f"{tag}_i0", f"{tag}_i1", f"{tag}_ax0"], [f"{tag}_h0"]),
            h.make_node("Slice", ["state", f"{tag}_i1", f"{tag}_i2", f"{tag}_ax0"], [f"{tag}_c0"])]


def _branch(tag: str, nodes: list, c_out: str, inits: list) -> onnx.GraphProto:
    """A branch ending as both do: state = (hN, ``c_out``), prob = sigmoid(hN head)."""
    nodes = nodes + [
        h.make_node("Concat", [f"{tag}_hN", c_out], [f"{tag}_state"], axis=0),
        h.make_node("Squeeze", [f"{tag}_hN", f"{tag}_ax0"], [f"{tag}_h2"]),
        h.make_node("MatMul", [f"{tag}_h2", f"{tag}_head"], [f"{tag}_logit"]),
        h.make_node("Sigmoid", [f"{tag}_logit"], [f"{tag}_prob"]),
    ]
    return h.make_graph(nodes, f"{tag}_branch", [], [
        h.make_tensor_value_info(f"{tag}_prob", T.FLOAT, [1, 1]),
        h.make_tensor_value_info(f"{tag}_state", T.FLOAT, [2, 1, HIDDEN])], initializer=inits)


def _lstm_branch(rng, tag: str) -> onnx.GraphProto:
    """16 kHz branch: LSTM over x from (h, c) = state, head = sigmoid(h W)."""
    inits = [_w(rng, f"{tag}_W", (1, 4 * HIDDEN, FEAT)), _w(rng, f"{tag}_R", (1, 4 * HIDDEN, HIDDEN)),
             _w(rng, f"{tag}_B", (1, 8 * HIDDEN), 0.1), _w(rng, f"{tag}_head", (HIDDEN, 1))]
    nodes = _state_slices(tag) + [
        h.make_node("Identity", ["xt"], [f"{tag}_x"]),
        h.make_node("LSTM", [f"{tag}_x", f"{tag}_W", f"{tag}_R", f"{tag}_B", "", f"{tag}_h0",
                             f"{tag}_c0"], [f"{tag}_Y", f"{tag}_hN", f"{tag}_cN"],
                    hidden_size=HIDDEN),
    ]
    return _branch(tag, nodes, f"{tag}_cN", inits + _state_index(tag))


def _gru_branch(rng, tag: str) -> onnx.GraphProto:
    """8 kHz branch: the input halved, a GRU from h = state[0]; c passed on unchanged
    through an Identity of an outer value."""
    inits = [_w(rng, f"{tag}_W", (1, 3 * HIDDEN, FEAT)), _w(rng, f"{tag}_R", (1, 3 * HIDDEN, HIDDEN)),
             _w(rng, f"{tag}_head", (HIDDEN, 1)),
             numpy_helper.from_array(np.array(0.5, np.float32), f"{tag}_half")]
    nodes = [h.make_node("Mul", ["xt", f"{tag}_half"], [f"{tag}_x"])] + _state_slices(tag) + [
        h.make_node("GRU", [f"{tag}_x", f"{tag}_W", f"{tag}_R", "", "", f"{tag}_h0"],
                    [f"{tag}_Y", f"{tag}_hN"], hidden_size=HIDDEN, linear_before_reset=1),
    ]
    return _branch(tag, nodes, f"{tag}_c0", inits + _state_index(tag))


def _shared_identity_branch(tag: str) -> onnx.GraphProto:
    return h.make_graph([h.make_node("Identity", ["energy"], [f"{tag}_e"])], f"{tag}_energy", [],
                        [h.make_tensor_value_info(f"{tag}_e", T.FLOAT, [1, 1])])


def vad_like(seed: int = 0) -> onnx.ModelProto:
    """input [1, STEPS, FEAT], state [2, 1, HIDDEN], sr (int64 scalar) ->
    output [1, 1], stateN [2, 1, HIDDEN], energy [1, 1]."""
    rng = np.random.default_rng(seed)
    nodes = [
        h.make_node("Constant", [], ["k16"], value=h.make_tensor("k16", T.INT64, [], [16000])),
        h.make_node("Equal", ["sr", "k16"], ["is16k"]),
        h.make_node("Transpose", ["input"], ["xt"], perm=[1, 0, 2]),
        h.make_node("ReduceMean", ["input"], ["energy3"], axes=[1, 2], keepdims=0),
        h.make_node("Unsqueeze", ["energy3", "ax1"], ["energy"]),
        h.make_node("If", ["is16k"], ["prob", "state_out"],
                    then_branch=_lstm_branch(rng, "t"), else_branch=_gru_branch(rng, "e")),
        # both branches forward the same outer value through an Identity
        h.make_node("If", ["is16k"], ["energy_out"], then_branch=_shared_identity_branch("t2"),
                    else_branch=_shared_identity_branch("e2")),
        h.make_node("Identity", ["prob"], ["output"]),
        h.make_node("Identity", ["state_out"], ["stateN"]),
    ]
    graph = h.make_graph(
        nodes, "vad_like",
        [h.make_tensor_value_info("input", T.FLOAT, [1, STEPS, FEAT]),
         h.make_tensor_value_info("state", T.FLOAT, [2, 1, HIDDEN]),
         h.make_tensor_value_info("sr", T.INT64, [])],
        [h.make_tensor_value_info("output", T.FLOAT, [1, 1]),
         h.make_tensor_value_info("stateN", T.FLOAT, [2, 1, HIDDEN]),
         h.make_tensor_value_info("energy_out", T.FLOAT, [1, 1])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "ax1")])
    return _model(graph)


def vad_feeds(sr: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {"input": rng.standard_normal((1, STEPS, FEAT)).astype(np.float32),
            "state": (rng.standard_normal((2, 1, HIDDEN)) * 0.5).astype(np.float32),
            "sr": np.array(sr, np.int64)}


def loop_accumulate(trip_count_input: bool = True, with_condition: bool = False,
                    trips: int = 4, scan: bool = True) -> onnx.ModelProto:
    """y_{k+1} = 0.5 * y_k + x (x captured), with a scan of the y's when ``scan``; with
    ``with_condition`` the loop also stops once sum(y) exceeds 3 (cond_out computed in
    the body)."""
    body_nodes = [
        h.make_node("Mul", ["y_in", "half"], ["y_half"]),
        h.make_node("Add", ["y_half", "x"], ["y_out"]),
    ]
    if scan:
        body_nodes.append(h.make_node("Identity", ["y_out"], ["scan"]))
    if with_condition:
        body_nodes += [h.make_node("ReduceSum", ["y_out"], ["total"], keepdims=0),
                       h.make_node("Greater", ["three", "total"], ["cond_out"])]
    else:
        body_nodes.append(h.make_node("Identity", ["cond_in"], ["cond_out"]))
    body = h.make_graph(
        body_nodes, "body",
        [h.make_tensor_value_info("iter", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("y_in", T.FLOAT, [1, 3])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []), h.make_tensor_value_info("y_out", T.FLOAT, [1, 3])]
        + ([h.make_tensor_value_info("scan", T.FLOAT, [1, 3])] if scan else []),
        initializer=[numpy_helper.from_array(np.array(0.5, np.float32), "half"),
                     numpy_helper.from_array(np.array(3.0, np.float32), "three")])
    inits = [numpy_helper.from_array(np.array(True), "cond0"),
             numpy_helper.from_array(np.zeros((1, 3), np.float32), "y0")]
    inputs = [h.make_tensor_value_info("x", T.FLOAT, [1, 3])]
    if trip_count_input:
        inputs.append(h.make_tensor_value_info("M", T.INT64, []))
    else:
        inits.append(numpy_helper.from_array(np.array(trips, np.int64), "M"))
    graph = h.make_graph(
        [h.make_node("Loop", ["M", "cond0", "y0"], ["y_final"] + (["ys"] if scan else []),
                     body=body)],
        "loop", inputs,
        [h.make_tensor_value_info("y_final", T.FLOAT, [1, 3])]
        + ([h.make_tensor_value_info("ys", T.FLOAT, [None, 1, 3])] if scan else []),
        initializer=inits)
    return _model(graph)
