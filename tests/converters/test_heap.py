"""The process's older objects are frozen while a conversion runs, and given back after
(``converters/flow/heap.py``): the collector skips them meanwhile, nothing stays frozen
afterwards, and a process that freezes objects itself is left alone."""
from __future__ import annotations

import gc
import threading

import numpy as np
import onnx
import pytest

from converters.api import convert
from converters.flow.heap import older_objects_frozen
from edgert.errors import EdgertError
from tests.converters import onnx_builders as ob


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("heap") / "padconv.onnx"
    onnx.save(ob.pad_conv(np.random.default_rng(0)), str(path))
    return path


def _no_freeze_left():
    assert gc.get_freeze_count() == 0, "a test before this one left objects frozen"


def test_a_conversion_freezes_older_objects_while_it_runs_and_unfreezes_after(
        small_onnx, tmp_path):
    _no_freeze_left()
    seen = []

    def on_stage(stage, variant, seconds):
        seen.append((stage, gc.get_freeze_count()))

    convert(str(small_onnx), "tflite", out_dir=str(tmp_path), verify=False, on_stage=on_stage)
    assert seen and all(count > 1000 for _, count in seen), seen[:3]
    assert gc.get_freeze_count() == 0


def test_a_failing_conversion_unfreezes_too(tmp_path):
    _no_freeze_left()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    frozen_at_start = []
    with pytest.raises(EdgertError):
        convert(str(bad), "tflite", out_dir=str(tmp_path / "o"), verify=False,
                on_stage=lambda stage, v, s: frozen_at_start.append(gc.get_freeze_count()))
    assert frozen_at_start and frozen_at_start[0] > 0     # it failed inside the block
    assert gc.get_freeze_count() == 0


def test_garbage_made_during_the_block_is_still_collected():
    _no_freeze_left()

    class Node:
        pass

    with older_objects_frozen() as froze:
        assert froze
        a, b = Node(), Node()
        a.other, b.other = b, a          # a cycle only the collector frees
        ref = id(a)
        del a, b
        gc.collect()
        assert not any(id(o) == ref for o in gc.get_objects())
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_objects_itself_is_left_alone():
    _no_freeze_left()
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        with older_objects_frozen() as froze:
            assert not froze
        assert gc.get_freeze_count() == mine        # our exit did not unfreeze its objects
    finally:
        gc.unfreeze()


def test_a_process_with_the_collector_off_is_left_alone():
    _no_freeze_left()
    gc.disable()
    try:
        with older_objects_frozen() as froze:
            assert not froze and gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_blocks_in_several_threads_share_one_freeze_until_the_last_leaves():
    _no_freeze_left()
    inside, leave = threading.Barrier(3), threading.Event()
    counts = []

    def worker():
        with older_objects_frozen():
            inside.wait()
            leave.wait()
            counts.append(gc.get_freeze_count())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()                # both inside
    with older_objects_frozen():
        pass                     # a third that enters and leaves must not unfreeze theirs
    assert gc.get_freeze_count() > 0
    leave.set()
    for t in threads:
        t.join()
    assert len(counts) == 2 and all(c > 0 for c in counts)
    assert gc.get_freeze_count() == 0
