"""The backend registry: one backend per target format.

A backend takes the optimized graph (an ``onnx_ir.Model`` after the pass
pipeline) and writes one file, in two steps: ``check`` answers "can you take this
model with these options, and if not, why?" (refusing options it cannot honor and
naming the first node it cannot take) and returns the model as it will be written
(patterns folded, ops it lacks decomposed); ``write`` writes that. ``convert`` is
both, for callers with one model and one target; ``converters.convert`` calls
``check`` once per target and then ``write``, so nothing is prepared twice.

What a user asks of every backend is ``BackendOptions``; each backend's own knobs
are one typed dataclass (``Backend.options_type``: ``converters.mnn.options.MnnOptions``,
``converters.tflite.options.TfliteOptions``) in ``BackendOptions.target_options``.
``resolve_target_options`` makes them from what ``convert(backend_options=...)``
was given.

Adding a target is one module that calls ``register_backend`` and one import in
``_BACKEND_MODULES``.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Type,
                    TypeVar)

from converters.errors import ConversionError
from converters.options import TargetOptions, suggest
from edgert.errors import InputError, UnsupportedOptionError

if TYPE_CHECKING:
    from quant_tables import QuantTable, SparsityTable

# target name -> module that registers it (imported on first use)
_BACKEND_MODULES: Dict[str, str] = {
    "mnn": "converters.mnn.backend",
    "tflite": "converters.tflite.backend",
}
_REGISTRY: Dict[str, Type["Backend"]] = {}

PRECISIONS = ("fp32", "fp16", "int8_weights", "int4_weights", "int8")


O = TypeVar("O", bound=TargetOptions)


@dataclass
class BackendOptions:
    """What a user asks of a target. Backends reject what they cannot honor."""

    precision: str = "fp32"                            # one of PRECISIONS
    quant_table: Optional["QuantTable"] = None         # for precision="int8"
    sparsity_table: Optional["SparsityTable"] = None   # sparse weights (element patterns)
    io_layout: str = "source"          # "source" (keep NCHW I/O) or "nhwc" (TFLite)
    io_dtype: str = "float"            # "float" or "int8" (full-int8 TFLite I/O)
    weight_block_size: int = 0         # block-wise weight quantization (0 = per channel)
    target_options: Optional[TargetOptions] = None     # the backend's own knobs; None: defaults
    # count the written file's ops where that costs a process of its own (MNN): False when
    # verification will load the file and count them there
    count_ops: bool = True
    # an ONNX file holding exactly the graph given to ``check`` (the flow's
    # <name>.optimized.onnx): a backend that hands a tool the graph unchanged reads it
    # instead of serializing the same graph again (MNN: 0.06-0.1 s)
    saved_model: str = ""

    def __post_init__(self) -> None:
        from quant_tables import QuantTable, SparsityTable

        if self.quant_table is not None and not isinstance(self.quant_table, QuantTable):
            raise UnsupportedOptionError("quant_table must be a quant_tables.QuantTable, not "
                                         f"{type(self.quant_table).__name__}")
        if self.sparsity_table is not None and not isinstance(self.sparsity_table,
                                                              SparsityTable):
            raise UnsupportedOptionError("sparsity_table must be a quant_tables.SparsityTable "
                                         "(sparse weights), not "
                                         f"{type(self.sparsity_table).__name__}")
        if isinstance(self.weight_block_size, bool) or not isinstance(
                self.weight_block_size, int) or self.weight_block_size < 0:
            raise UnsupportedOptionError("weight_block_size must be an integer >= 0, not "
                                         f"{self.weight_block_size!r}")
        if self.target_options is not None and not isinstance(self.target_options,
                                                              TargetOptions):
            raise UnsupportedOptionError(
                "target_options must be a backend's options dataclass (MnnOptions, "
                f"TfliteOptions), not {type(self.target_options).__name__}")

    def knobs(self, cls: Type[O]) -> O:
        """The backend's own options: ``target_options`` when it is a ``cls``, else the
        defaults; another backend's dataclass is refused."""
        if self.target_options is None:
            return cls()
        if not isinstance(self.target_options, cls):
            raise UnsupportedOptionError(
                f"{cls.target} takes {cls.__name__}, not "
                f"{type(self.target_options).__name__} (that is for "
                f"{self.target_options.target})")
        return self.target_options


@dataclass
class Checked:
    """What ``Backend.check`` accepted: the model as the backend will write it."""

    model: Any                                           # onnx_ir.Model
    notes: List[str] = field(default_factory=list)       # what preparing it did
    unchanged: bool = False          # ``model`` is the graph given to check, as it was


@dataclass
class BackendResult:
    """One written model file and what the backend learned writing it."""

    target: str
    path: Path
    size_bytes: int
    op_counts: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)       # human-readable facts and warnings
    details: Dict[str, Any] = field(default_factory=dict)  # machine-readable (per-layer reports...)


class Backend(ABC):
    """Writes one target format from an optimized ONNX graph."""

    name: str = ""
    extension: str = ""
    options_type: Type[TargetOptions] = TargetOptions

    @abstractmethod
    def check(self, model: Any, options: BackendOptions) -> Checked:
        """Raise ``UnsupportedOptionError`` for options it cannot honor and
        ``UnsupportedOpError`` (node, op, target) for the first node it cannot take;
        return the model ready to write (the caller's model is not changed)."""

    @abstractmethod
    def write(self, checked: Checked, out_path: Path, options: BackendOptions
              ) -> BackendResult:
        """Write a model ``check`` accepted (with the same options) to ``out_path``."""

    def convert(self, model: Any, out_path: Path, options: BackendOptions) -> BackendResult:
        """``check`` then ``write``: write ``model`` (an ``onnx_ir.Model``) to ``out_path``."""
        return self.write(self.check(model, options), Path(out_path), options)


def register_backend(cls: Type[Backend]) -> Type[Backend]:
    """Class decorator: register a backend under ``cls.name`` (duplicates are an error)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"backend {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_backend(name: str) -> Backend:
    """An instance of the backend for target ``name``."""
    if name not in _BACKEND_MODULES:
        raise ConversionError(f"unknown target {name!r}; targets: {', '.join(_BACKEND_MODULES)}")
    if name not in _REGISTRY:
        try:
            importlib.import_module(_BACKEND_MODULES[name])
        except ImportError as exc:
            raise ConversionError(f"target {name!r} is not available in this install: "
                                  f"{exc}") from None
        if name not in _REGISTRY:
            raise ConversionError(f"{_BACKEND_MODULES[name]} did not register target {name!r}")
    return _REGISTRY[name]()


def target_names() -> List[str]:
    return list(_BACKEND_MODULES)




def options_type(name: str) -> Type[TargetOptions]:
    """The options dataclass of target ``name``."""
    return get_backend(name).options_type


def resolve_target_options(given: Any, targets: Sequence[str]) -> Dict[str, TargetOptions]:
    """One options instance per target in ``targets`` from ``convert(backend_options=...)``.

    Accepted: None; a backend's dataclass (``MnnOptions(...)``) or a list of them; a dict
    keyed by target (``{"mnn": {...} or MnnOptions(...), "tflite": {...}}``) and/or by
    option name (``{"weight_quant_asymmetric": True}``: each name must belong to exactly
    one of the targets converted). A block for a known target that is not converted is
    checked and not used (one dict can serve several calls); a flat name that belongs
    to no converted target is refused, naming it and the accepted ones.
    """
    types = {t: options_type(t) for t in targets}
    blocks: Dict[str, Dict[str, Any]] = {}
    made: Dict[str, TargetOptions] = {}
    for key, value in _option_items(given):
        if isinstance(value, TargetOptions):
            owner = value.target
            if key is not None and key != owner:
                raise InputError(f"backend_options[{key!r}] is a {type(value).__name__} "
                                 f"(options for {owner})")
            if owner in made or owner in blocks:
                raise InputError(f"backend options for {owner} given twice")
            if type(value) is not _known_type(owner, types):
                raise InputError(f"backend options for {owner} must be "
                                 f"{_known_type(owner, types).__name__}")
            made[owner] = value
        elif key in target_names():
            if not isinstance(value, Mapping):
                raise InputError(f"backend_options[{key!r}] must be a dict of option values "
                                 f"or a {_known_type(key, types).__name__}, not "
                                 f"{type(value).__name__}")
            for name, v in value.items():
                _add(blocks, key, name, v)
        else:
            _add(blocks, option_owner(key, types), key, value)
    for owner, values in blocks.items():
        if owner in made:
            raise InputError(f"backend options for {owner} given twice (a dataclass and "
                             f"keys: {', '.join(values)})")
        made[owner] = _known_type(owner, types).from_mapping(values)
    return {t: made.get(t) or types[t]() for t in targets}


def _option_items(given: Any) -> List[tuple]:
    if given is None:
        return []
    if isinstance(given, TargetOptions):
        return [(None, given)]
    if isinstance(given, Mapping):
        bad = [k for k in given if not isinstance(k, str)]
        if bad:
            raise InputError(f"backend_options keys must be strings, not {bad[0]!r}")
        return list(given.items())
    if isinstance(given, (list, tuple)) and all(isinstance(v, TargetOptions) for v in given):
        return [(None, v) for v in given]
    raise InputError("backend_options must be a dict ({'mnn': {...}} or option names), a "
                     "backend's options dataclass or a list of them, not "
                     f"{type(given).__name__}")


def _add(blocks: Dict[str, Dict[str, Any]], owner: str, name: str, value: Any) -> None:
    if name in blocks.setdefault(owner, {}):
        raise InputError(f"{owner} option {name!r} given twice")
    blocks[owner][name] = value


def _known_type(target: str, types: Mapping[str, Type[TargetOptions]]) -> Type[TargetOptions]:
    return types[target] if target in types else options_type(target)


_COMMON = ("precision", "quant_table", "sparsity_table", "io_layout", "io_dtype",
           "weight_block_size")


def option_owner(name: str, types: Mapping[str, Type[TargetOptions]]) -> str:
    """The target among ``types`` ({target: its options class}) whose options include
    ``name``, or an InputError saying why there is none."""
    owners = [t for t, cls in types.items() if name in cls.accepted()]
    if len(owners) == 1:
        return owners[0]
    if len(owners) > 1:
        raise InputError(f"backend option {name!r} belongs to {' and '.join(owners)}: give "
                         f"it per target ({{{owners[0]!r}: {{{name!r}: ...}}}})")
    if name in _COMMON:
        raise InputError(f"{name!r} is an argument of convert() itself, not a backend option")
    for other in target_names():
        if other in types:
            continue
        try:
            if name in options_type(other).accepted():
                raise InputError(f"backend option {name!r} is for {other}, which is not among "
                                 f"the targets ({', '.join(types)})")
        except ConversionError:   # that target is not installed: it cannot own the name
            continue
    accepted = {t: cls.accepted() for t, cls in types.items()}
    every = [n for names in accepted.values() for n in names]
    listed = "; ".join(f"{t}: {', '.join(names) or '(none)'}" for t, names in accepted.items())
    raise InputError(f"unknown backend option {name!r}{suggest(name, every)}; accepted: "
                     f"{listed}")


def parse_option_texts(items: Sequence[str], targets: Sequence[str]
                       ) -> Dict[str, Dict[str, Any]]:
    """``{target: {name: value}}`` from command-line ``NAME=VALUE`` or
    ``TARGET.NAME=VALUE`` items, each value read as its option's type."""
    types = {t: options_type(t) for t in targets}
    out: Dict[str, Dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"bad backend option {item!r}: write NAME=VALUE or "
                             "TARGET.NAME=VALUE")
        target, dot, name = key.rpartition(".")
        if not dot:
            target = option_owner(name, types)
        elif target not in target_names():
            raise InputError(f"bad backend option {item!r}: {target!r} is not a target "
                             f"({', '.join(target_names())})")
        _add(out, target, name, _known_type(target, types).parse_value(name, text))
    return out
