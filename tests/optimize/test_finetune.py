"""Fine-tuning a pruned candidate on its ONNX graph (``converters.optimize.finetune``)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from converters.optimize.finetune import onnx_module, unsupported_ops
from converters.optimize.trainer import Recipe, Trainer
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
    Trainer({"x": x, "labels": y}, ["x"], Recipe(epochs=20, lr=3e-3, distill=0.0))(pruned)
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



def _teacher_and_pruned(tiny, tmp_path):
    """The tiny net's optimized graph (the teacher) and the same with its block's and
    head's hidden widths at a quarter."""
    import onnx_ir as ir

    from converters.pruning import prune_channels

    proto, path = _optimized(tiny[0], tmp_path)
    model = ir.serde.deserialize_model(proto)
    prune_channels(model, keep={r"^block\.0\.weight$": 0.25, r"^head\.0\.weight$": 0.25},
                   cost=False)
    return proto, path, ir.serde.serialize_model(model)


def _copy(proto):
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def test_distillation_pulls_the_pruned_graph_to_the_teacher(tiny, tmp_path):
    """The labels are noise (random classes, independent of the inputs), so only the
    teacher's term can teach the unpruned graph's function: distilled (weight 1), the
    pruned graph's KL divergence to the teacher on held-out inputs falls at least
    tenfold (measured: ~700x) and its top-1 agrees with the teacher more than before;
    trained on the labels alone it stays at least ten times farther (measured: ~150x)
    and agrees less (measured: on no input)."""
    import torch
    import torch.nn.functional as F

    teacher, path, pruned = _teacher_and_pruned(tiny, tmp_path)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((320, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 4, 320)
    held = torch.from_numpy(x[256:])
    with torch.no_grad():
        ref = onnx_module(teacher).eval()(held)

    def kl_agreement(p):
        with torch.no_grad():
            s = onnx_module(p).eval()(held)
        kl = F.kl_div(s.log_softmax(1), ref.log_softmax(1), reduction="batchmean",
                      log_target=True).item()
        return kl, float((s.argmax(1) == ref.argmax(1)).float().mean())

    kl0, agree0 = kl_agreement(pruned)
    runs = {}
    for distill in (0.0, 1.0):
        p = _copy(pruned)
        Trainer({"x": x[:256], "labels": y[:256]}, ["x"], Recipe(steps=40, distill=distill),
                teacher=path)(p)
        runs[distill] = kl_agreement(p)
    assert runs[1.0][0] <= 0.1 * kl0 and runs[1.0][1] >= agree0
    assert runs[0.0][0] >= 10 * runs[1.0][0] and runs[0.0][1] < runs[1.0][1]


def _record_steps():
    """Every optimizer step torch takes (its learning rate), by torch's own global hook."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    lrs: list = []
    handle = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    return lrs, handle


@pytest.mark.parametrize("recipe, depth, steps", [
    (Recipe(steps=40), 0.5, 40),          # FULL_DEPTH: the whole budget
    (Recipe(steps=40), 1.0, 40),          # deeper: still the whole budget
    (Recipe(steps=40), 0.375, 30),        # three quarters as deep: 3/4 of the steps
    (Recipe(steps=40), 0.02, 20),         # a shallow probe: MIN_SHARE (half) of them
    (Recipe(epochs=3, batch=4), 0.02, 15),  # 18 samples in batches of 4: 5 a pass
])
def test_the_step_budget_is_what_torch_steps(tiny, tmp_path, recipe, depth, steps):
    _, path, pruned = _teacher_and_pruned(tiny, tmp_path)
    rng = np.random.default_rng(3)
    data = {"x": rng.standard_normal((18, 1, 32, 32)).astype(np.float32),
            "labels": rng.integers(0, 4, 18)}
    trainer = Trainer(data, ["x"], recipe, teacher=path)
    lrs, handle = _record_steps()
    try:
        trainer(_copy(pruned), depth=depth)
    finally:
        handle.remove()
    assert len(lrs) == steps == trainer.steps_for(depth)


def test_the_learning_rate_warms_up_then_decays_towards_zero(tiny, tmp_path):
    """40 steps at lr 1e-3: 4 of warm-up from 1e-4, the peak at step 4, then cosine
    decay; the last step's rate is cos-decayed 35/36 of the way (1e-3 * 0.0019)."""
    import math

    _, path, pruned = _teacher_and_pruned(tiny, tmp_path)
    rng = np.random.default_rng(3)
    data = {"x": rng.standard_normal((16, 1, 32, 32)).astype(np.float32),
            "labels": rng.integers(0, 4, 16)}
    lrs, handle = _record_steps()
    try:
        Trainer(data, ["x"], Recipe(steps=40, lr=1e-3, batch=8), teacher=path)(_copy(pruned))
    finally:
        handle.remove()
    assert lrs[0] == pytest.approx(1e-4) and lrs[4] == pytest.approx(1e-3)
    assert max(lrs) == pytest.approx(1e-3)
    assert all(b <= a for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 35 / 36)))


def test_a_users_loop_gets_the_budget_and_the_teacher(tiny, tmp_path):
    """``ctx["teacher"]`` is the unpruned graph (onnxruntime's outputs on the teacher
    file), not the module being trained; ``ctx["steps"]`` the pruning's budget."""
    import onnxruntime as ort
    import torch

    _, path, pruned = _teacher_and_pruned(tiny, tmp_path)
    x = np.random.default_rng(4).standard_normal((4, 1, 32, 32)).astype(np.float32)
    seen = {}

    def train(module, ctx):
        seen.update(ctx)
        seen["teacher_out"] = ctx["teacher"](torch.from_numpy(x)).numpy()
        with torch.no_grad():
            seen["module_out"] = module(torch.from_numpy(x)).numpy()

    Trainer(train, ["x"], Recipe(steps=100), teacher=path)(_copy(pruned), depth=0.25)
    sess = ort.InferenceSession(path)
    name = sess.get_inputs()[0].name
    ref = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    assert np.abs(seen["teacher_out"] - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.abs(seen["module_out"] - ref).max() > 1e-2 * np.abs(ref).max()
    assert seen["steps"] == 50 and seen["epochs"] is None and seen["depth"] == 0.25


@pytest.mark.parametrize("recipe, match", [
    (Recipe(steps=10, epochs=2), "not both"),
    (Recipe(steps=0), "--train-steps 0: must be at least 1"),
    (Recipe(epochs=0), "--train-epochs 0"),
    (Recipe(schedule="linear"), "choose constant, cosine"),
])
def test_bad_budgets_are_named(recipe, match):
    with pytest.raises(InputError, match=match):
        Trainer({"x": np.zeros((4, 1, 8, 8), np.float32), "labels": np.zeros(4)}, ["x"],
                recipe)


def test_the_builder_hands_the_pruning_depth_to_the_trainer(tiny, tmp_path):
    """A candidate with only the block at keep 0.5 is trained with its share of the
    budget: depth = half the block's removable channels over all units' (not 0.5, which
    is every unit at keep 0.5), and the steps that depth sets."""
    from converters.optimize.build import CandidateBuilder
    from converters.optimize.prepare import _units
    from converters.optimize.space import Candidate, Option, UnitSpace

    _, path, _ = _teacher_and_pruned(tiny, tmp_path)
    units = _units(path)
    prunable = [u for u in units if u.prunable]
    assert len(prunable) >= 2            # the block's and the head's hidden widths
    seen = {}
    trainer = Trainer(lambda module, ctx: seen.update(ctx), ["x"], Recipe(steps=100),
                      teacher=path)
    builder = CandidateBuilder(path, units, UnitSpace(), "tflite", str(tmp_path / "b"), None,
                               None, trainer=trainer)
    cand = Candidate.uniform(len(units), Option()).with_option(prunable[0].index,
                                                               Option(keep=0.5))
    builder._finetuned(cand, builder._base_model())
    expected = 0.5 * prunable[0].removable / sum(u.removable for u in units)
    assert 0.0 < expected < 0.5
    assert seen["depth"] == pytest.approx(expected)
    assert seen["steps"] == trainer.steps_for(expected) == max(50, int(np.ceil(200 * expected)))
    assert builder.depth(Candidate.uniform(len(units), Option(keep=0.5))) == pytest.approx(0.5)
    # block sparsity counts as the share of the 1x1 weights zeroed
    sparse = [u for u in units if u.sparsifiable]
    one = Candidate.uniform(len(units), Option()).with_option(sparse[0].index,
                                                              Option(sparsity=0.75))
    assert builder.depth(one) == pytest.approx(
        0.75 * len(sparse[0].sparsifiable) / sum(len(u.sparsifiable) for u in units))
    assert builder.depth(Candidate.uniform(len(units), Option(sparsity=0.75))) == \
        pytest.approx(0.75)


def test_masked_fine_tuning_keeps_the_block_sparsity(tiny, tmp_path):
    """The block's 1x1 convolution at 1x4 blocks, 50 %: fine-tuned with ``masked`` its
    zeros are exactly the ones it had (and the other weights did train); without it
    Adam fills them in. The sparsity is trained, not imposed on trained weights."""
    from onnx import numpy_helper

    from quant_tables.producers.sparsity_onnx import prune_onnx

    teacher, path, _ = _teacher_and_pruned(tiny, tmp_path)
    sparse, _, _ = prune_onnx(teacher, "1x4", {"block.0.weight": 0.5}, kinds=("conv1x1",))

    def weight(p):
        return next(numpy_helper.to_array(i) for i in p.graph.initializer
                    if i.name == "block.0.weight")

    zeros = weight(sparse) == 0
    assert 0.45 <= zeros.mean() <= 0.55
    rng = np.random.default_rng(5)
    data = {"x": rng.standard_normal((32, 1, 32, 32)).astype(np.float32),
            "labels": rng.integers(0, 4, 32)}
    held, free = _copy(sparse), _copy(sparse)
    Trainer(data, ["x"], Recipe(steps=10), teacher=path)(held, masked=True)
    Trainer(data, ["x"], Recipe(steps=10), teacher=path)(free)
    assert np.array_equal(weight(held) == 0, zeros)
    assert not np.allclose(weight(held)[~zeros], weight(sparse)[~zeros])
    assert (weight(free)[zeros] != 0).mean() > 0.9


def test_the_cli_help_states_the_trainers_constants():
    """The CLI writes them out (its parser is built where only the runtime is installed)."""
    from converters.optimize.trainer import DEFAULT_STEPS, FULL_DEPTH, MIN_SHARE
    from edgert.cli.optimize import TRAIN_STEPS_HELP

    assert (f"removes {FULL_DEPTH:g} of the prunable channels or more; shallower ones get "
            f"their share, at least {MIN_SHARE:g} of it (default {DEFAULT_STEPS})"
            ) in TRAIN_STEPS_HELP
