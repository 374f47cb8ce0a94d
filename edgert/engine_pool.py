"""Why a Session is safe to call from many threads: every call borrows an engine
instance that no other call is using at that moment.

LiteRT's interpreter is not re-entrant: two threads in ``set_tensor``/``invoke``
on one interpreter fail ("There is at least 1 reference to internal data...") or,
worse, read back each other's outputs. MNN's module keeps per-call state too.
ONNX Runtime's ``InferenceSession.run`` is documented thread-safe, so its engine
is shared without a lock (``Engine.reentrant``).

For the others the pool holds up to ``size`` instances of the engine: with
``size=1`` (the default) calls on one session are serialized, which costs no
memory; a larger size creates a second, third... instance of the model the first
time that many calls overlap (each with its own tensors and, for XNNPACK, its own
packed weights), so overlapping calls run in parallel. ``bench/bench_threads.py``
measures both against one session per thread.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, List, Sequence

import numpy as np

from edgert.engines.base import Engine


class EnginePool:
    """Lends engine instances to calls, one call per instance at a time."""

    def __init__(self, first: Engine, factory: Callable[[], Engine], size: int = 1) -> None:
        self.first = first
        self._factory = factory
        self._size = max(1, int(size))
        self._shared = bool(getattr(first, "reentrant", False))
        self._free: List[Engine] = [first]
        self._all: List[Engine] = [first]
        self._made = 1
        self._cond = threading.Condition()
        self._lock = threading.Lock()     # size 1: the whole pool is a lock (cheaper)

    @property
    def instances(self) -> int:
        """How many engine instances exist (grows with overlapping calls up to the size)."""
        return self._made

    def run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        """``engine.run(arrays)`` on an engine no other call is using (the hot path of
        ``Session.run``: no context-manager machinery)."""
        if self._shared:
            return self.first.run(arrays)
        if self._size == 1:
            with self._lock:
                return self.first.run(arrays)
        engine = self._take()
        try:
            return engine.run(arrays)
        finally:
            self._give(engine)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Engine]:
        """An engine for the caller's exclusive use until the block ends."""
        if self._shared:
            yield self.first
            return
        if self._size == 1:
            with self._lock:
                yield self.first
            return
        engine = self._take()
        try:
            yield engine
        finally:
            self._give(engine)

    def _give(self, engine: Engine) -> None:
        with self._cond:
            self._free.append(engine)
            self._cond.notify()

    def _take(self) -> Engine:
        with self._cond:
            while not self._free and self._made >= self._size:
                self._cond.wait()
            if self._free:
                return self._free.pop()
            self._made += 1          # reserve the slot, build outside the lock
        try:
            engine = self._factory()
        except BaseException:
            with self._cond:
                self._made -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._all.append(engine)
        return engine

    def close(self) -> None:
        with self._cond:
            engines, self._free, self._all = list(self._all), [], []
        for engine in engines:
            engine.close()
