"""A Session shared by many threads: every call gets the output of its own input.

LiteRT's interpreter is not re-entrant (shared by 4 threads without the session's
pool it fails most calls and returns other threads' outputs in some); the session
serializes calls on it, or gives each overlapping call an interpreter of its own
with ``concurrency=N``. Every output is compared with the output computed for its
own input beforehand, one thread at a time."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import edgert

THREADS, CALLS = 4, 150


def _hammer(sessions, inputs, refs):
    """THREADS threads, thread k on sessions[k % len(sessions)], CALLS calls each over
    inputs chosen so that neighbouring threads never send the same one."""
    wrong, errors = [], []
    start = threading.Barrier(THREADS)

    def work(k):
        s = sessions[k % len(sessions)]
        start.wait()
        for c in range(CALLS):
            j = (k + THREADS * c) % len(inputs)
            try:
                out = s.run(inputs[j])
            except Exception as exc:  # noqa: BLE001 - counted, reported below
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            got = next(iter(out.values()))
            if not np.array_equal(got, refs[j]):
                wrong.append((k, c, j))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong, errors


def _inputs(session, n=24):
    rng = np.random.default_rng(5)
    shape = session.inputs[0].concrete_shape()
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("fmt", ["tflite", "tflite_int8", "onnx", "mnn"])
@pytest.mark.parametrize("concurrency", [1, THREADS])
def test_one_session_many_threads_every_output_is_its_own(models, fmt, concurrency):
    s = edgert.load(models[fmt], threads=1, concurrency=concurrency)
    inputs = _inputs(s)
    refs = [next(iter(s.run(x).values())) for x in inputs]
    # distinct inputs give distinct outputs, or a swapped output could pass unseen
    assert len({r.tobytes() for r in refs}) == len(refs)
    wrong, errors = _hammer([s], inputs, refs)
    assert errors == [] and wrong == [], (errors[:3], wrong[:5])
    if concurrency == 1 or s.engine.reentrant:
        assert s._pool.instances == 1
    s.close()


def test_concurrency_bounds_the_engine_instances(models):
    s = edgert.load(models["tflite"], threads=1, concurrency=2)
    inputs = _inputs(s)
    refs = [s.run(x)["y"] for x in inputs]
    wrong, errors = _hammer([s], inputs, refs)
    assert errors == [] and wrong == []
    assert 1 <= s._pool.instances <= 2
