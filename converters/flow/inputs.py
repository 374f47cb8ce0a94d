"""Verification's input sets, and the calibration samples held out for them.

One input set can agree by chance (a constant output, a branch never taken, a
ReLU that happens to be off), so verification runs several, each named in the
report:

- the user's data (``verify_inputs``), first, when given;
- a torch model's example inputs;
- for int8 with calibration data: samples of that data the calibration never saw
  (``split_calibration``), so an int8 model is judged on the distribution it was
  calibrated for rather than on N(0,1) noise (PP-OCR's detector "failed" at int8 on
  noise while it is fine on images); no seeded sets then;
- otherwise ``count`` seeded sets (N(0,1) floats, small ints; ``verify_seed``,
  +1, ...). When the user's data or example inputs are there, the seeded sets take
  their shapes and all but their float data (rank 2 and up): integer, bool and
  rank-0/1 float inputs (token ids, masks, lengths, scales, thresholds) are values
  the user knows and noise does not.

Values the user fixed (``input_values``, ``--input sr=16000``) go into every set and
every calibration feed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from converters.verify import DYNAMIC_DIM, load_feeds, random_feeds
from edgert.errors import InputError

MAX_HELD_OUT = 8            # calibration samples kept for verification, at most
HELD_OUT_FRACTION = 5       # one in five, at least one when there are two or more
CALIBRATION_BATCH = 16      # what the calibration runs at once (dynamic batch)


@dataclass
class InputSet:
    """One named set of feeds, by input name."""

    name: str
    feeds: Dict[str, np.ndarray]
    seeded: bool = False


def verification_sets(src: Any, verify_inputs: Any, seed: int, count: int,
                      held_out: Optional[List[InputSet]] = None) -> List[InputSet]:
    """The input sets verification runs (module docstring), fixed values applied."""
    fixed = dict(getattr(src, "input_values", {}) or {})
    names = src.input_names
    sets: List[InputSet] = []
    if verify_inputs is not None:
        desc = os.fspath(verify_inputs) if isinstance(verify_inputs, (str, os.PathLike)) \
            else "given arrays"
        sets.append(InputSet(f"given: {desc}", _with(_given(verify_inputs, names, fixed),
                                                      fixed)))
    if src.example_inputs is not None:
        sets.append(InputSet("example inputs", _with(dict(src.example_inputs), fixed)))
    if held_out:
        return sets + held_out
    like = sets[0].feeds if sets else None
    specs = src.input_specs()
    for k in range(count):
        feeds = _seeded(specs, seed + k, like, fixed)
        if feeds is not None:
            dyn = _dynamic_note(specs) if like is None else ""
            sets.append(InputSet(f"seeded N(0,1), seed {seed + k}{dyn}", feeds, seeded=True))
    return sets


def _given(verify_inputs: Any, names: Sequence[str], fixed: Mapping[str, np.ndarray]
           ) -> Dict[str, np.ndarray]:
    """The user's data, which may leave out the inputs whose values are fixed."""
    if not fixed:
        return load_feeds(verify_inputs, names)
    try:
        return load_feeds(verify_inputs, names)
    except InputError:
        return load_feeds(verify_inputs, [n for n in names if n not in fixed])


def _with(feeds: Dict[str, np.ndarray], fixed: Mapping[str, np.ndarray]
          ) -> Dict[str, np.ndarray]:
    return {**feeds, **fixed}


def _seeded(specs: Sequence[tuple], seed: int, like: Optional[Mapping[str, np.ndarray]],
            fixed: Mapping[str, np.ndarray]) -> Optional[Dict[str, np.ndarray]]:
    """A seeded set; with ``like`` (the user's or example set), its shapes and all but
    its float data inputs (rank >= 2). None when nothing would vary."""
    free = [(n, s, t) for n, s, t in specs if n not in fixed]
    if like is not None:
        free = [(n, np.shape(like[n]), np.asarray(like[n]).dtype) for n, _, _ in free
                if n in like]
        draw = [sp for sp in free if np.issubdtype(sp[2], np.floating) and len(sp[1]) >= 2]
        if not draw:
            return None
        feeds = {n: like[n] for n, _, _ in free}
        feeds.update(random_feeds(draw, seed))
    else:
        feeds = random_feeds(free, seed)
    return {**feeds, **fixed}


def _dynamic_note(specs: Sequence[tuple]) -> str:
    dynamic = any(not isinstance(d, int) or d <= 0 for _, shape, _ in specs for d in shape[1:])
    return f"; dynamic dims: batch 1, others {DYNAMIC_DIM}" if dynamic else ""


# -- calibration samples held out ---------------------------------------------------------

def held_out_indices(n: int) -> List[int]:
    """Which of ``n`` calibration feeds verification keeps: one in five, 1 to 8 of them,
    spread evenly (none when there is a single feed)."""
    if n < 2:
        return []
    k = min(MAX_HELD_OUT, max(1, n // HELD_OUT_FRACTION))
    return sorted({min(n - 1, int((j + 0.5) * n / k)) for j in range(k)})


class CalibrationSplit:
    """Calibration data without its held-out feeds: what ``calibrate`` iterates (again
    for two-pass methods), the fixed input values added to every feed, consecutive
    single-sample feeds joined into batches when the batch dim is dynamic."""

    def __init__(self, data: Any, shapes: Mapping[str, Sequence], fixed: Mapping[str, Any],
                 held: Sequence[int], total: int, batched: bool) -> None:
        self.data, self.shapes, self.fixed = data, dict(shapes), dict(fixed)
        self.held, self.total, self.batched = set(held), total, batched

    def _single(self) -> Iterator[Tuple[int, Dict[str, np.ndarray]]]:
        from quant_tables.calibration_data import iter_feeds

        for i, feed in enumerate(iter_feeds(self.data, self.shapes, batch=1)):
            yield i, feed

    def __iter__(self) -> Iterator[Dict[str, np.ndarray]]:
        pending: List[Dict[str, np.ndarray]] = []
        for i, feed in self._single():
            if i in self.held:
                continue
            if not self.batched:
                yield {**feed, **self.fixed}
                continue
            pending.append(feed)
            if len(pending) == CALIBRATION_BATCH:
                yield self._join(pending)
                pending = []
        if pending:
            yield self._join(pending)

    def _join(self, feeds: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        joined = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
        return {**joined, **self.fixed}

    def held_out(self) -> List[InputSet]:
        return [InputSet(f"held-out calibration sample {i + 1} of {self.total}",
                         {**feed, **self.fixed}) for i, feed in self._single() if i in self.held]

    def describe(self) -> str:
        base = self.data.describe() if hasattr(self.data, "describe") else \
            (os.fspath(self.data) if isinstance(self.data, (str, os.PathLike)) else "given data")
        kept = self.total - len(self.held)
        return (f"{base}: {kept} of {self.total} feeds calibrate, {len(self.held)} held out "
                f"for verification")


def split_calibration(data: Any, specs: Sequence[tuple], fixed: Mapping[str, Any]
                      ) -> Tuple[Any, List[InputSet], str]:
    """(what to calibrate on, the held-out sets, a note). A single feed is not split:
    it calibrates and verification runs on it too (said in the note)."""
    from quant_tables.calibration_data import iter_feeds

    shapes = {n: s for n, s, _ in specs if n not in fixed}
    total = sum(1 for _ in iter_feeds(data, shapes, batch=1))
    held = held_out_indices(total)
    batch0 = next(iter(shapes.values()), (1,))
    batched = not (batch0 and isinstance(batch0[0], int) and batch0[0] > 0)
    split = CalibrationSplit(data, shapes, fixed, held, total, batched)
    if not held:
        sets = [InputSet("calibration sample (the only one: not held out)",
                         {**f, **fixed}) for f in iter_feeds(data, shapes, batch=1)]
        return split, sets, "the calibration data has one feed: verified on it, not held out"
    return split, split.held_out(), f"calibration data {split.describe()}"
