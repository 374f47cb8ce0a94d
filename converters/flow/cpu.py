"""One CPU-heavy step of a conversion per core at a time.

The targets of a conversion are written and verified in threads and child processes
at once, beside the reference computed in its own thread (``stages.py``). On a machine
with fewer cores than steps, running them all at once only shares the cores: MNN's
converter, the longest step, then takes twice as long and everything waits for it
(ResNet-18 on 2 cores: the convert and verify stages 1.4 s one after the other, 1.9 s
all at once). Each step takes a slot while it computes; a step never takes a second
slot while it holds one, so no step can wait for itself.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_SLOTS = threading.BoundedSemaphore(_cores())


@contextlib.contextmanager
def cpu_slot() -> Iterator[None]:
    """Hold one of the process's CPU slots (one per core) for the ``with`` block."""
    with _SLOTS:
        yield
