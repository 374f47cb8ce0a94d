"""Typed backend options: one frozen dataclass per backend's knobs, checked on construction.

    from converters.mnn.options import MnnOptions
    from converters.tflite.options import TfliteOptions

    MnnOptions(weight_quant_asymmetric=True)
    TfliteOptions(fp16_min_elements=64)
    MnnOptions(weight_quant_asymetric=True)   # InputError: unknown mnn option
                                              # 'weight_quant_asymetric' ...; accepted: ...
    MnnOptions(mnn_args="--fp16")             # InputError: mnn option mnn_args must be a
                                              # list of strings, not str

A backend declares its class (``Backend.options_type``) and reads it from
``BackendOptions.target_options``; ``converters.backends.resolve_target_options``
turns what ``convert(backend_options=...)`` was given (the dataclasses, or a dict)
into one instance per target before any work starts.

Fields are declared with ``option(default, help, choices=..., minimum=...)``; the
accepted types are bool, int, float, str and Tuple[str, ...] (a list is accepted
for a tuple). ``parse_value`` reads a field's value from text (for command lines).
"""
from __future__ import annotations

import difflib
import typing
from dataclasses import Field, field, fields
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from edgert.errors import InputError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def option(default: Any, help: str, *, choices: Optional[Sequence[str]] = None,
           minimum: Optional[float] = None) -> Any:
    """A field of a TargetOptions dataclass: its default, what it does, its allowed values."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "minimum": minimum}
    return field(default=default, metadata=meta)


def suggest(name: str, accepted: Sequence[str]) -> str:
    """ " (did you mean 'x'?)" for a near miss, else ""."""
    close = difflib.get_close_matches(name, list(accepted), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class TargetOptions:
    """Base of the per-backend option dataclasses (subclasses: ``@dataclass(frozen=True)``).

    A misspelt keyword is refused before the dataclass' own ``__init__`` runs (with the
    accepted names, not Python's TypeError); wrongly typed values in ``__post_init__``.
    """

    target: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "TargetOptions":
        names = cls.accepted()
        unknown = [k for k in kwargs if k not in names]
        if unknown:
            raise InputError(f"unknown {cls.target} option {unknown[0]!r}"
                             f"{suggest(unknown[0], names)}; accepted: {', '.join(names)}")
        if len(args) > len(names):
            raise InputError(f"{cls.__name__} takes at most {len(names)} values, "
                             f"got {len(args)}")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = _checked(self.target, f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    @classmethod
    def accepted(cls) -> List[str]:
        """The option names, in declaration order."""
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TargetOptions":
        """An instance from ``{name: value}`` (checked like keywords)."""
        if not isinstance(values, Mapping):
            raise InputError(f"{cls.target} options must be a dict of option values or a "
                             f"{cls.__name__}, not {type(values).__name__}")
        bad = [k for k in values if not isinstance(k, str)]
        if bad:
            raise InputError(f"{cls.target} option names must be strings, not {bad[0]!r}")
        return cls(**dict(values))

    @classmethod
    def describe(cls) -> List[Tuple[str, str, Any, str]]:
        """(name, type, default, help) per option, for docs and ``--help``."""
        hints = typing.get_type_hints(cls)
        return [(f.name, _type_name(hints[f.name]), f.default, f.metadata.get("help", ""))
                for f in fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def parse_value(cls, name: str, text: str) -> Any:
        """The value of option ``name`` written as text (``true``, ``64``, ``--a --b``)."""
        import shlex

        if name not in cls.accepted():
            raise InputError(f"unknown {cls.target} option {name!r}"
                             f"{suggest(name, cls.accepted())}; accepted: "
                             f"{', '.join(cls.accepted())}")
        tp = typing.get_type_hints(cls)[name]
        try:
            if tp is bool:
                if text.strip().lower() not in _TRUE + _FALSE:
                    raise ValueError
                return text.strip().lower() in _TRUE
            if tp is int:
                return int(text)
            if tp is float:
                return float(text)
            if tp is str:
                return text
            return tuple(shlex.split(text))
        except ValueError:
            raise InputError(f"{cls.target} option {name}={text!r}: expected "
                             f"{_type_name(tp)}") from None

    def changed(self) -> Dict[str, Any]:
        """The options that differ from their defaults."""
        return {f.name: getattr(self, f.name) for f in fields(self)  # type: ignore[arg-type]
                if getattr(self, f.name) != f.default}


def _type_name(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(tp, "a list of strings")


def _checked(target: str, f: Field, tp: Any, value: Any) -> Any:
    """``value`` as field ``f`` stores it, or an InputError naming the option."""
    where = f"{target} option {f.name}"
    ok = True
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif typing.get_origin(tp) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:  # pragma: no cover - a declaration error, caught by the options tests
        raise TypeError(f"{where}: unsupported option type {tp!r}")
    if not ok:
        raise InputError(f"{where} must be {_type_name(tp)}, not {type(value).__name__} "
                         f"({value!r})")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise InputError(f"{where}={value!r}; accepted: {', '.join(choices)}")
    minimum = f.metadata.get("minimum")
    if minimum is not None and value < minimum:
        raise InputError(f"{where}={value!r} must be at least {minimum}")
    return value


__all__ = ["TargetOptions", "option", "suggest"]
