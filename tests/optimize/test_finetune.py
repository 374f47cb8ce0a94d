"""Fine-tuning a pruned candidate on its ONNX graph (``converters.optimize.finetune``)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from converters.optimize.finetune import Trainer, onnx_module, unsupported_ops
from edgert.errors import InputError
from tests.optimize.tiny import tiny_files


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_files(str(tmp_path_factory.mktemp("tiny-ft")))


def _optimized(path: str, tmp_path):
    """The graph candidates are built from: the converter's optimized ONNX (BN folded)."""
    from converters.api import convert

    rep = convert(path, targets=("tflite",), out_dir=str(tmp_path), verify=False)
    return onnx.load(rep.optimized_path), rep.optimized_path


def test_executor_computes_what_onnxruntime_does(tiny, tmp_path):
    import onnxruntime as ort
    import torch

    proto, path = _optimized(tiny[0], tmp_path)
    x = np.load(tiny[1])["x"][:8]
    sess = ort.InferenceSession(path)
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    with torch.no_grad():
        got = onnx_module(proto).eval()(torch.from_numpy(x)).numpy()   # batched: 8 at once
    # float32 sums of a few hundred terms in another order: ~1e-6 relative; 1e-4 bounds it
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_fine_tuning_trains_the_pruned_graph(tiny, tmp_path):
    """The pruned graph (the block's hidden width at a quarter) learns a task its random
    weights do not solve: four classes told apart by the inputs' mean (-1/+1) and spread
    (0.5/2), which global pooling of ReLU features sees. The trained weights are the
    graph's (written back, shapes unchanged)."""
    import onnx_ir as ir
    import torch

    from converters.pruning import prune_channels

    proto, _ = _optimized(tiny[0], tmp_path)
    model = ir.serde.deserialize_model(proto)
    prune_channels(model, keep={r"^block\.0\.weight$": 0.25}, cost=False)
    pruned = ir.serde.serialize_model(model)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 256)
    x = (rng.standard_normal((256, 1, 32, 32)) * np.where(y % 2, 2.0, 0.5)[:, None, None, None]
         + np.where(y // 2, 1.0, -1.0)[:, None, None, None]).astype(np.float32)

    def agreement(p) -> float:
        with torch.no_grad():
            return float(np.mean(onnx_module(p).eval()(torch.from_numpy(x)).numpy()
                                 .argmax(1) == y))

    before = agreement(pruned)
    shapes = {i.name: tuple(i.dims) for i in pruned.graph.initializer}
    Trainer({"x": x, "labels": y}, ["x"], epochs=20, lr=3e-3)(pruned)
    after = agreement(pruned)
    assert after >= 0.95 and after - before >= 0.2
    assert {i.name: tuple(i.dims) for i in pruned.graph.initializer} == shapes


def test_unsupported_ops_are_named():
    from onnx import TensorProto, helper

    node = helper.make_node("Einsum", ["a", "b"], ["c"], equation="ij,jk->ik")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT,
                                                                      [2, 2]) for n in "ab"],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 2])])
    proto = helper.make_model(g)
    assert unsupported_ops(proto) == ["Einsum"]
    with pytest.raises(InputError, match="Einsum"):
        onnx_module(proto)


@pytest.mark.parametrize("spec, match", [
    ({"x": np.zeros((4, 1, 8, 8), np.float32)}, "labels"),
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "labels": np.zeros(3)}, "3 labels for 4"),
])
def test_bad_training_data_is_named(spec, match):
    with pytest.raises(InputError, match=match):
        Trainer(spec, ["x"])

