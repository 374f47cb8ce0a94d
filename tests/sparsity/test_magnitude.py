"""Magnitude pruning: each pattern's zeros, targets reached, global ranking, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from edgert.errors import InputError
from quant_tables.producers.magnitude import (LayerWeightArray, PatternSpec, nm_violations,
                                              prune_layers)
from quant_tables.sparsity_table import pattern_sparsity


def _layers(seed=0):
    rng = np.random.default_rng(seed)
    return [LayerWeightArray("conv.weight", rng.normal(size=(32, 16, 1, 1)).astype(np.float32),
                             0, 1, "conv1x1"),
            LayerWeightArray("fc.weight", (0.1 * rng.normal(size=(16, 64))).astype(np.float32),
                             0, 1, "fc")]


def _pruned(layer, result):
    return np.where(result.masks[layer.name], layer.array, 0)


@pytest.mark.parametrize("pattern, block", [("1x4", (4, 1)), ("ic4", (1, 4)), ("ic16", (1, 16))])
def test_block_patterns_zero_whole_blocks(pattern, block):
    layers = _layers()
    res = prune_layers(layers, PatternSpec.parse(pattern), 0.75)
    for l in layers:
        e = res.entries[l.name]
        assert e.pattern == "block" and tuple(e.block) == block
        w = _pruned(l, res)
        # every zero sits in an all-zero block: the block count equals the element count
        assert pattern_sparsity(w, e) == pytest.approx(float(np.mean(w == 0)))
        assert e.measured == pytest.approx(0.75, abs=0.02)


def test_unstructured_reaches_each_layer_target_and_keeps_the_largest():
    layers = _layers()
    res = prune_layers(layers, PatternSpec.parse("unstructured"), {"conv": 0.9, "fc": 0.5})
    by = {r.name: r for r in res.layers}
    assert by["conv.weight"].reached == pytest.approx(0.9, abs=1 / 512)
    assert by["fc.weight"].reached == pytest.approx(0.5, abs=1 / 1024)
    w = _pruned(layers[0], res)
    kept = np.abs(layers[0].array[w != 0])
    dropped = np.abs(layers[0].array[w == 0])
    assert kept.min() >= dropped.max()


def test_global_ranking_prunes_the_small_layer_harder():
    layers = _layers()                    # fc weights are 10x smaller than conv weights
    res = prune_layers(layers, PatternSpec.parse("unstructured"), 0.5, scope="global")
    by = {r.name: r.reached for r in res.layers}
    total = sum(l.array.size for l in layers)
    zeros = sum(by[l.name] * l.array.size for l in layers)
    assert zeros / total == pytest.approx(0.5, abs=1 / total)
    assert by["fc.weight"] > 0.7 and by["conv.weight"] < 0.1   # per-layer would give 0.5 each


def test_two_four_holds_in_every_group_of_input_channels():
    layers = _layers()
    res = prune_layers(layers, PatternSpec.parse("2:4"), 0.9)    # n:m ignores the target
    for l in layers:
        w = _pruned(l, res)
        assert nm_violations(w, 2, 4, 1) == 0
        assert float(np.mean(w == 0)) == pytest.approx(0.5)
        assert res.entries[l.name].n == 2 and res.entries[l.name].axis == 1


def test_channel_pattern_lists_whole_rows_and_keeps_one():
    layers = _layers()
    res = prune_layers(layers[:1], PatternSpec.parse("channel"), 0.25)
    e = res.entries["conv.weight"]
    w = _pruned(layers[0], res)
    dead = [c for c in range(32) if not np.any(w[c])]
    assert dead == e.pruned and len(dead) == 8
    norms = np.abs(layers[0].array).mean(axis=(1, 2, 3))
    assert set(dead) == set(np.argsort(norms)[:8].tolist())
    one = prune_layers(layers[:1], PatternSpec.parse("channel"), 0.999)
    assert len(one.entries["conv.weight"].pruned) == 31


def test_block_along_output_channels_of_a_transposed_layout():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 8)).astype(np.float32)     # MatMul weight [in, out]
    l = LayerWeightArray("mm", w, out_axis=1, in_axis=0, kind="fc")
    res = prune_layers([l], PatternSpec.parse("1x4"), 0.5)
    e = res.entries["mm"]
    assert tuple(e.axes) == (1, 0) and tuple(e.block) == (4, 1)
    pw = _pruned(l, res)
    blocks = pw.reshape(16, 2, 4)                       # 4 consecutive outputs per input row
    assert np.all(np.all(blocks == 0, axis=2) | np.all(blocks != 0, axis=2))


@pytest.mark.parametrize("bad", ["diagonal", "4:4", "0x4"])
def test_unknown_pattern_is_named(bad):
    with pytest.raises(InputError, match="pattern"):
        PatternSpec.parse(bad)


def test_bad_targets_are_refused():
    with pytest.raises(InputError, match="fraction"):
        prune_layers(_layers(), PatternSpec.parse("unstructured"), 1.5)
    with pytest.raises(InputError, match="global target is one number"):
        prune_layers(_layers(), PatternSpec.parse("unstructured"), {"a": 0.5}, scope="global")
    odd = LayerWeightArray("odd", np.ones((4, 6), np.float32), 0, 1, "fc")
    with pytest.raises(InputError, match="multiple of m=4"):
        prune_layers([odd], PatternSpec.parse("2:4"), 0.5)


def test_n_m_leaves_a_weight_that_cannot_hold_it_dense():
    """An RGB stem has 3 input channels: no 2:4 grouping fits, so it stays dense and is
    named (NVIDIA's ASP does the same); the other weights get the pattern. It was an
    InputError for the whole model, naming no layer."""
    stem = LayerWeightArray("stem", np.ones((8, 3, 3, 3), np.float32), 0, 1, "conv")
    body = LayerWeightArray("body", np.arange(64, dtype=np.float32).reshape(8, 8) - 30, 0, 1,
                            "fc")
    res = prune_layers([stem, body], PatternSpec.parse("2:4"), 0.5)
    assert res.skipped == [("stem", "3 input elements, not a multiple of m=4")]
    assert set(res.masks) == {"body"} and set(res.entries) == {"body"}
    assert nm_violations(np.where(res.masks["body"], body.array, 0), 2, 4, 1) == 0
    assert res.to_dict()["skipped"] == [{"weight": "stem", "reason": res.skipped[0][1]}]
