"""The objects that existed before a conversion, left out of the garbage collector's
full sweeps while it runs.

Why: a conversion allocates hundreds of thousands of small objects (graph nodes, values,
shapes), so CPython's collector runs its oldest generation once or twice per conversion,
and that sweep walks every tracked object of the process, not only the conversion's.
With PyTorch imported that is 300,000+ objects: one sweep took 0.16-0.18 s of a 0.6 s
conversion (the 547-node detector of ``bench/bench_convert_time.py``), landing on a
random stage each time. ``gc.freeze`` moves the objects that exist now into a permanent
generation the sweeps skip (both calls only relink lists: no walk), and ``gc.unfreeze``
gives them back to the oldest generation afterwards, so nothing is kept alive for longer
than the conversion: garbage made before it is collected by a later sweep, garbage the
conversion makes is collected as usual meanwhile.

Left alone: a process that froze objects itself (``gc.get_freeze_count() > 0``: undoing
our freeze would undo its own) or that turned the collector off. Conversions in several
threads at once share one freeze: the first to enter freezes, the last to leave unfreezes.
"""
from __future__ import annotations

import contextlib
import gc
import threading
from typing import Iterator

_LOCK = threading.Lock()
_HOLDERS = 0          # conversions inside ``older_objects_frozen`` that froze (or share it)


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[bool]:
    """Freeze the process's existing objects for the block (yields whether it did)."""
    global _HOLDERS
    with _LOCK:
        mine = _HOLDERS > 0 or (gc.isenabled() and gc.get_freeze_count() == 0)
        if mine:
            if _HOLDERS == 0:
                gc.freeze()
            _HOLDERS += 1
    try:
        yield mine
    finally:
        if mine:
            with _LOCK:
                _HOLDERS -= 1
                if _HOLDERS == 0:
                    gc.unfreeze()
