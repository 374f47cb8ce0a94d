"""Per-op tables: one key shape, one registration rule, one lookup.

Every table of per-op knowledge (TFLite lowerings, op versions, layout rules,
channel-pruning rules, cost models, decompositions, weight axes, what MNN computes
wrongly...) is an ``OpRegistry``. Its key is an ``OpKey`` (domain, op type) whose
domain is normalized once: ``""`` and ``"ai.onnx"`` are the same default domain,
as ONNX defines them. A registration covers an ONNX opset range; a second
registration of the same key over an overlapping range is an error naming both
registrants, never a silent overwrite. Decorators register plain functions and
return them unchanged. A registry may name the modules that fill it: they are
imported on first use (no import-time side effects elsewhere), so listing the
table (``edgert ops``) shows everything.

Pure Python on the runtime floor: the converters and the table code (which sits
below them) both build their tables with it, and nothing here imports onnx.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import (Callable, Dict, Generic, Iterable, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple, TypeVar, Union)

DEFAULT_DOMAIN = ""
_DEFAULT_DOMAIN_NAMES = frozenset({"", "ai.onnx"})
EDGERT_DOMAIN = "ai.edgert"    # our own ops (patterns folded for TFLite: Gelu, GroupNorm)

T = TypeVar("T")
F = TypeVar("F", bound=Callable)


def is_default_domain(domain: Optional[str]) -> bool:
    """Whether ``domain`` names ONNX's default operator set (``""``, ``"ai.onnx"``)."""
    return (domain or "") in _DEFAULT_DOMAIN_NAMES


def normalize_domain(domain: Optional[str]) -> str:
    """``""`` for the default domain however it is spelled; any other domain unchanged."""
    return DEFAULT_DOMAIN if is_default_domain(domain) else str(domain)


def op_label(domain: Optional[str], op_type: str) -> str:
    """How an op is named to people: ``Conv``, or ``domain::Op`` outside the default domain."""
    d = normalize_domain(domain)
    return f"{d}::{op_type}" if d else op_type


def default_opset(opset_imports: Mapping[str, int], fallback: int) -> int:
    """The default-domain opset a model imports (under ``""`` or ``"ai.onnx"``), else
    ``fallback``."""
    for name in ("", "ai.onnx"):
        if name in opset_imports:
            return int(opset_imports[name])
    return int(fallback)


@dataclass(frozen=True)
class OpKey:
    """An operator's identity: its domain (normalized) and op type."""

    domain: str
    op_type: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", normalize_domain(self.domain))

    @classmethod
    def of(cls, node) -> "OpKey":
        """The key of an onnx-ir or ONNX-proto node (anything with ``domain``/``op_type``)."""
        return cls(getattr(node, "domain", "") or "", node.op_type)

    @property
    def label(self) -> str:
        return op_label(self.domain, self.op_type)

    def __str__(self) -> str:
        return self.label


class OpsetRange(NamedTuple):
    """Inclusive opset range; ``high`` None is open-ended. Unpacks as ``(low, high)``."""

    low: int = 1
    high: Optional[int] = None

    def covers(self, opset: int) -> bool:
        return opset >= self.low and (self.high is None or opset <= self.high)

    def overlaps(self, other: "OpsetRange") -> bool:
        return ((other.high is None or self.low <= other.high)
                and (self.high is None or other.low <= self.high))

    def __str__(self) -> str:
        return f"{self.low}+" if self.high is None else f"{self.low}-{self.high}"


ANY_OPSET = OpsetRange()
OpsetSpec = Union[OpsetRange, Tuple[int, Optional[int]]]


class DuplicateRegistrationError(ValueError):
    """The same op registered twice in one table over overlapping opsets (a programming
    error in the table, raised at import time)."""


@dataclass(frozen=True)
class Registration(Generic[T]):
    key: OpKey
    opsets: OpsetRange
    value: T
    source: str                 # who registered it (module.function), for the error message


def _source_of(value: object) -> str:
    fn = getattr(value, "fn", value)
    fn = getattr(fn, "func", fn)                # functools.partial
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{mod}.{name}" if mod else name


class OpRegistry(Generic[T]):
    """One table of per-op knowledge: ``OpKey`` + opset range -> a value.

    ``what`` names the table's entries in messages ("TFLite lowering"); ``modules``
    are imported before the first lookup or listing (each registers its ops);
    ``domain`` is the domain op types are registered and looked up in when a call
    gives none (``""``: ONNX's default; a table of TFLite builtins uses its own).
    """

    def __init__(self, what: str, modules: Sequence[str] = (),
                 domain: str = DEFAULT_DOMAIN) -> None:
        self.what = what
        self.modules = tuple(modules)
        self.domain = normalize_domain(domain)
        self._entries: Dict[OpKey, List[Registration[T]]] = {}
        self._loaded = not self.modules

    # -- filling ------------------------------------------------------------------------
    def key(self, op_type: str, domain: Optional[str] = None) -> OpKey:
        return OpKey(self.domain if domain is None else domain, op_type)

    def add(self, op_type: str, value: T, *, domain: Optional[str] = None,
            opsets: OpsetSpec = ANY_OPSET, source: Optional[str] = None) -> Registration[T]:
        """Register ``value`` for ``op_type``; refuse an overlap with an earlier entry."""
        key = self.key(op_type, domain)
        span = OpsetRange(*opsets)
        if span.high is not None and span.high < span.low:
            raise ValueError(f"{self.what} for {key}: empty opset range {tuple(span)}")
        entry = Registration(key, span, value, source or _source_of(value))
        for other in self._entries.get(key, []):
            if other.opsets.overlaps(span):
                raise DuplicateRegistrationError(
                    f"{self.what} for {key} registered twice (opsets {other.opsets} by "
                    f"{other.source}, opsets {span} by {entry.source})")
        self._entries.setdefault(key, []).append(entry)
        return entry

    def register(self, *op_types: str, domain: Optional[str] = None,
                 opsets: OpsetSpec = ANY_OPSET) -> Callable[[F], F]:
        """Decorator: the function is the entry of every op in ``op_types``; returned as is."""
        def deco(fn: F) -> F:
            for op in op_types:
                self.add(op, fn, domain=domain, opsets=opsets)  # type: ignore[arg-type]
            return fn
        return deco

    # -- reading ------------------------------------------------------------------------
    def load(self) -> None:
        """Import the modules that fill this table (once)."""
        if self._loaded:
            return
        for mod in self.modules:
            importlib.import_module(mod)
        self._loaded = True

    def find(self, op_type: str, domain: Optional[str] = None,
             opset: Optional[int] = None) -> Optional[Registration[T]]:
        """The registration for the op at ``opset`` (None: the op's only registration)."""
        self.load()
        entries = self._entries.get(self.key(op_type, domain), [])
        if opset is None:
            if len(entries) > 1:
                raise ValueError(f"{self.what} for {self.key(op_type, domain)} depends on the "
                                 f"opset ({', '.join(str(e.opsets) for e in entries)}); "
                                 "ask with one")
            return entries[0] if entries else None
        return next((e for e in entries if e.opsets.covers(opset)), None)

    def lookup(self, op_type: str, domain: Optional[str] = None,
               opset: Optional[int] = None, default: Optional[T] = None) -> Optional[T]:
        """The value registered for the op (at ``opset``), or ``default``."""
        entry = self.find(op_type, domain, opset)
        return default if entry is None else entry.value

    def of_node(self, node, opset: Optional[int] = None,
                default: Optional[T] = None) -> Optional[T]:
        """The value registered for a node's domain and op type."""
        return self.lookup(node.op_type, getattr(node, "domain", "") or "", opset, default)

    def registrations(self, op_type: Optional[str] = None,
                      domain: Optional[str] = None) -> List[Registration[T]]:
        """Every registration (of one op when ``op_type`` is given), in registration order."""
        self.load()
        if op_type is not None:
            return list(self._entries.get(self.key(op_type, domain), []))
        return [e for group in self._entries.values() for e in group]

    def keys(self) -> List[OpKey]:
        self.load()
        return list(self._entries)

    def labels(self) -> List[str]:
        """The ops with an entry, as people name them (``Op``, ``domain::Op``), sorted."""
        return sorted(k.label for k in self.keys())

    def op_types(self) -> List[str]:
        """The op types registered in the table's own domain, in registration order."""
        return [k.op_type for k in self.keys() if k.domain == self.domain]

    def __contains__(self, item: Union[OpKey, str]) -> bool:
        key = item if isinstance(item, OpKey) else self.key(item)
        self.load()
        return key in self._entries

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"<OpRegistry {self.what}: {len(self._entries)} ops>"


def register_all(registry: OpRegistry,
                 values: Union[Mapping[str, object], Iterable[Tuple[str, object]]], *,
                 domain: Optional[str] = None, source: str = "") -> None:
    """Fill ``registry`` from an ``{op_type: value}`` table (data tables, not functions)."""
    items = values.items() if isinstance(values, Mapping) else values
    for op, value in items:
        registry.add(op, value, domain=domain, source=source or None)  # type: ignore[arg-type]
