"""What the user asks of a search: a latency budget, a speed-up, an accuracy floor.

``--latency-ms X``: the chosen model must measure at most X ms on the device;
``--speedup 2x``: at most the fp32 model's measured latency / 2; ``--max-drop P``:
lose at most P accuracy points (percentage points of the evaluator's accuracy)
against the fp32 model. A budget with a drop limit asks for the most accurate model
under the budget that keeps the limit; a drop limit alone asks for the fastest model
that keeps it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

from edgert.errors import InputError


def parse_speedup(value: Union[str, float]) -> float:
    """``"2x"``, ``"2"`` or ``2.0`` -> 2.0 (must be at least 1)."""
    text = str(value).strip().lower().rstrip("x")
    try:
        out = float(text)
    except ValueError:
        raise InputError(f"speed-up {value!r}: write a factor such as 2x or 1.5") from None
    if not math.isfinite(out) or out < 1.0:
        raise InputError(f"speed-up {value!r}: must be at least 1x")
    return out


@dataclass(frozen=True)
class Goal:
    """A latency budget (absolute or as a speed-up) and/or an accuracy floor."""

    latency_ms: Optional[float] = None
    speedup: Optional[float] = None
    max_drop: Optional[float] = None        # accuracy points

    def __post_init__(self) -> None:
        if self.latency_ms is None and self.speedup is None and self.max_drop is None:
            raise InputError("give a goal: --latency-ms X, --speedup 2x or --max-drop P "
                             "(a budget and a drop limit may go together)")
        if self.latency_ms is not None and self.speedup is not None:
            raise InputError("give --latency-ms or --speedup, not both")
        if self.latency_ms is not None and not (math.isfinite(self.latency_ms)
                                                and self.latency_ms > 0):
            raise InputError(f"--latency-ms {self.latency_ms}: must be a positive number")
        if self.speedup is not None:
            parse_speedup(self.speedup)
        if self.max_drop is not None and not (math.isfinite(self.max_drop)
                                              and 0.0 <= self.max_drop <= 100.0):
            raise InputError(f"--max-drop {self.max_drop}: accuracy points from 0 to 100")

    def budget_ms(self, base_ms: float) -> Optional[float]:
        """The latency budget, given the fp32 model's measured latency (None: no budget)."""
        if self.latency_ms is not None:
            return float(self.latency_ms)
        if self.speedup is not None:
            return base_ms / float(self.speedup)
        return None

    def drop_ok(self, base_acc: float, acc: float) -> bool:
        """Whether ``acc`` keeps the drop limit (always, without one); 1e-6 points of
        slack absorb float rounding, far less than one sample of any evaluation set."""
        if self.max_drop is None:
            return True
        return (base_acc - acc) * 100.0 <= self.max_drop + 1e-6

    def describe(self) -> str:
        parts = []
        if self.latency_ms is not None:
            parts.append(f"<= {self.latency_ms:g} ms")
        if self.speedup is not None:
            parts.append(f">= {self.speedup:g}x faster than fp32")
        if self.max_drop is not None:
            parts.append(f"<= {self.max_drop:g} pt accuracy drop")
        return ", ".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        return {"latency_ms": self.latency_ms, "speedup": self.speedup,
                "max_drop": self.max_drop}
