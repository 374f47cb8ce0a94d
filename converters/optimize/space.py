"""The search space: per unit, a precision, a channel keep ratio and a block sparsity.

``Option`` is one unit's choice; ``Candidate`` one choice per unit (the model the
choices make). Precisions:

* ``fp32``: the unit stays float;
* ``int8``: every op of the unit in full int8 (the table's scales, per-channel weights);
* ``int8-mixed``: int8 except the few ops error localization blames most (the unit's
  ``mixed_float`` list, from ``edgert quant-debug``'s dB lost): what stays float is
  bracketed by QUANTIZE/DEQUANTIZE in TFLite and left out of MNN's compression params.

``keep`` is the fraction of the unit's local channel groups kept (``units.py``);
``sparsity`` the 1x4 (4 output channels) block sparsity of its 1x1 convolutions,
offered only where the target has a sparse kernel that runs them (MNN's float
SIMD_OC kernels; TFLite has no sparse convolution kernel). What a target offers is
``SpaceSpec``: the CLI's ``--precisions``, ``--keep`` and ``--sparsity``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from edgert.errors import InputError

PRECISIONS = ("fp32", "int8", "int8-mixed")
#: per target: precisions it can mix in one file and whether it has sparse conv kernels
TARGET_CAPS: Dict[str, Dict[str, Any]] = {
    "tflite": {"precisions": PRECISIONS, "sparse_conv": False},
    "mnn": {"precisions": PRECISIONS, "sparse_conv": True},
}


@dataclass(frozen=True, order=True)
class Option:
    """One unit's choice."""

    precision: str = "fp32"
    keep: float = 1.0
    sparsity: float = 0.0

    @property
    def is_base(self) -> bool:
        return self.precision == "fp32" and self.keep >= 1.0 and self.sparsity <= 0.0

    @property
    def quantized(self) -> bool:
        return self.precision != "fp32"

    def label(self) -> str:
        parts = [self.precision]
        if self.keep < 1.0:
            parts.append(f"keep {self.keep:g}")
        if self.sparsity > 0.0:
            parts.append(f"1x4 {self.sparsity:g}")
        return " ".join(parts)

    def to_list(self) -> List[Any]:
        return [self.precision, self.keep, self.sparsity]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> "Option":
        return cls(str(v[0]), float(v[1]), float(v[2]))


BASE = Option()


@dataclass(frozen=True)
class Candidate:
    """One option per unit (in unit order)."""

    options: Tuple[Option, ...]

    @classmethod
    def uniform(cls, n: int, option: Option) -> "Candidate":
        return cls(tuple([option] * n))

    def with_option(self, unit: int, option: Option) -> "Candidate":
        opts = list(self.options)
        opts[unit] = option
        return Candidate(tuple(opts))

    @property
    def key(self) -> str:
        text = json.dumps([o.to_list() for o in self.options])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def precision(self) -> str:
        """The conversion's precision: int8 as soon as one unit is quantized."""
        return "int8" if any(o.quantized for o in self.options) else "fp32"

    def changed(self) -> List[int]:
        return [i for i, o in enumerate(self.options) if not o.is_base]

    def label(self) -> str:
        """Short: the uniform option, or per changed unit ``u3:int8 keep 0.5``."""
        if len(set(self.options)) == 1:
            return f"uniform {self.options[0].label()}"
        changed = self.changed()
        if not changed:
            return "uniform fp32"
        return ", ".join(f"u{i}:{self.options[i].label()}" for i in changed)

    def to_list(self) -> List[List[Any]]:
        return [o.to_list() for o in self.options]

    @classmethod
    def from_list(cls, v: Iterable[Sequence[Any]]) -> "Candidate":
        return cls(tuple(Option.from_list(o) for o in v))


@dataclass
class SpaceSpec:
    """What the search may choose per unit."""

    precisions: Tuple[str, ...] = ("fp32", "int8", "int8-mixed")
    keeps: Tuple[float, ...] = (1.0, 0.75, 0.5)
    sparsities: Tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise InputError(f"precision(s) {bad}; the search mixes {', '.join(PRECISIONS)} "
                             "(fp16 is a whole-model choice: see docs/OPTIMIZE.md)")
        if "fp32" not in self.precisions:
            self.precisions = ("fp32",) + tuple(self.precisions)
        if any(not 0.0 < k <= 1.0 for k in self.keeps):
            raise InputError(f"keep ratios must be in (0, 1], got {list(self.keeps)}")
        if any(not 0.0 <= s < 1.0 for s in self.sparsities):
            raise InputError(f"block sparsities must be in [0, 1), got {list(self.sparsities)}")
        self.keeps = tuple(sorted(set(self.keeps) | {1.0}, reverse=True))
        self.sparsities = tuple(sorted(set(self.sparsities) | {0.0}))

    def for_target(self, target: str) -> "SpaceSpec":
        """This space as ``target`` can build it (no sparsity without sparse kernels)."""
        caps = TARGET_CAPS.get(target)
        if caps is None:
            raise InputError(f"target {target!r}; the search builds {', '.join(TARGET_CAPS)}")
        sparsities = self.sparsities if caps["sparse_conv"] else (0.0,)
        return SpaceSpec(tuple(p for p in self.precisions if p in caps["precisions"]),
                         self.keeps, sparsities)

    def options(self, can_prune: bool, can_sparsify: bool, has_mixed: bool) -> List[Option]:
        """Every option of a unit (the base first). Block sparsity runs on MNN's float
        kernels only (its int8 sparse coding is not faster: docs/SPARSITY.md), so it is
        offered with fp32."""
        out = [BASE]
        keeps = self.keeps if can_prune else (1.0,)
        for p in self.precisions:
            if p == "int8-mixed" and not has_mixed:
                continue
            sparsities = self.sparsities if (p == "fp32" and can_sparsify) else (0.0,)
            for k in keeps:
                for s in sparsities:
                    o = Option(p, k, s)
                    if o not in out:
                        out.append(o)
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"precisions": list(self.precisions), "keeps": list(self.keeps),
                "sparsities": list(self.sparsities)}


@dataclass
class UnitSpace:
    """The options of every unit, and which ops each unit's ``int8-mixed`` keeps float."""

    options: List[List[Option]] = field(default_factory=list)
    mixed_float: List[List[str]] = field(default_factory=list)   # node names per unit

    def to_dict(self) -> Dict[str, Any]:
        return {"options": [[o.to_list() for o in opts] for opts in self.options],
                "mixed_float": self.mixed_float}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "UnitSpace":
        return cls([[Option.from_list(o) for o in opts] for opts in d["options"]],
                   [list(m) for m in d["mixed_float"]])
