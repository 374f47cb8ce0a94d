"""Children forked from the warm zygotes (``converters.flow.launch.call``): a crash is
the child's signal, a deadline kills, a failure leaves its traceback, and the pool frees
its slot whatever happened."""
from __future__ import annotations

import time

import pytest

from converters.flow import launch


def test_a_crash_in_a_forked_child_is_its_signal_and_frees_the_slot(tmp_path):
    """ctypes.string_at(0) reads address 0: SIGSEGV, every time (MNN's converter crashes
    on some graphs only as their memory happens to lie, so it cannot be this test's
    crash). MNN's converter runs this way (its failures: test_mnn.py)."""
    launch.warm(1)
    assert launch.call("ctypes:string_at", 0, str(tmp_path / "call.log"), timeout_s=30) == -11
    assert not any(lock.locked() for lock in launch._LOCKS)      # the slot is free again


def test_a_call_past_its_deadline_is_killed_and_the_pool_still_serves(tmp_path):
    launch.warm()
    log = str(tmp_path / "call.log")
    t = time.monotonic()
    with pytest.raises(launch.CallTimeout, match="time:sleep did not finish within 1 s"):
        launch.call("time:sleep", 60, log, timeout_s=1.0)
    assert time.monotonic() - t < 15
    assert not any(lock.locked() for lock in launch._LOCKS)
    # the next call runs in a forked child and reports the function's exit code
    assert launch.call("builtins:abs", -7, log, timeout_s=30) == 7


def test_a_failing_function_leaves_its_traceback_in_the_log(tmp_path):
    launch.warm()
    log = tmp_path / "call.log"
    assert launch.call("json:loads", "{not json", str(log), timeout_s=30) == 1
    assert "JSONDecodeError" in log.read_text()


def test_a_call_never_starts_a_zygote(tmp_path):
    """A zygote's imports (0.2 s) cost more than a small child's start (0.06 s): a call
    with no zygote running says so (None: the caller spawns), and starts none. Without
    verification (which starts them) MNN's converter is spawned as it always was."""
    for zygote in list(launch._ZYGOTES):
        if zygote is not None:
            zygote.close()
    assert launch.call("builtins:abs", -7, str(tmp_path / "call.log"), timeout_s=30) is None
    assert launch._ZYGOTES == [None] * launch.POOL_SIZE
    launch.warm()
    assert launch.call("builtins:abs", -7, str(tmp_path / "call.log"), timeout_s=30) == 7
