"""MNN engine, through the module API of the ``MNN`` wheel.

MNN prints banners and errors on the C ``stdout``; the import, the load and any
failing run are wrapped in ``capture_native_output`` so ``--json`` output stays
clean and MNN's own message ends up in the ``EngineError``.

MNN does not record which input dims are dynamic (a dynamic batch reads back as
1), and it resizes any input on demand. A file written by edgert's MNN backend
records its dynamic dims in the bizCode (``edgert.mnn_summary``), so the Session
checks its feeds' static dims as for the other engines: MNN would otherwise run a
2x3x256x256 feed through a model converted and verified at 1x3x224x224 without a
word. For any other .mnn file the Session checks only the rank of a feed; a shape
MNN cannot take comes back as MNN's own error.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from edgert.engines.base import Engine
from edgert.errors import EngineError, UnsupportedOptionError
from edgert.native_output import capture_native_output
from edgert.tensors import TensorInfo

_MNN = None
_PRECISION = {"auto": "normal", "fp32": "high", "fp16": "low"}
# Interpreter::HintMode::WINOGRAD_MEMORY_LEVEL; level 0 turns Winograd convolutions off
# (``winograd=False``: verification measures the file, not MNN's fast-but-rougher
# F(6x6, 3x3) transforms, which lose about 1e-3 relative on a 3x3 convolution).
_HINT_WINOGRAD_MEMORY_LEVEL = 3


def _mnn():
    global _MNN
    if _MNN is None:
        with capture_native_output():
            import MNN  # type: ignore
        _MNN = MNN
    return _MNN


def _dtypes(F) -> Dict[object, np.dtype]:
    return {F.float: np.dtype(np.float32), F.int: np.dtype(np.int32),
            F.int64: np.dtype(np.int64), F.double: np.dtype(np.float64),
            F.uint8: np.dtype(np.uint8), F.int8: np.dtype(np.int8)}


class MNNEngine(Engine):
    name = "mnn"
    formats = ("mnn",)
    precisions = tuple(_PRECISION)
    strict_shapes = False
    # MNN turns NaN and Inf in a float input into +-3.4e38 (measured on its CPU backend):
    # the Session refuses them unless the caller allows them
    computes_nonfinite = False

    @classmethod
    def available(cls) -> Optional[str]:
        try:
            _mnn()
        except ImportError as exc:
            return f"the MNN wheel is not installed ({exc}); pip install 'edgert[mnn]'"
        return None

    @classmethod
    def version(cls) -> str:
        return f"MNN {_mnn().version()}"

    def __init__(self, path: str, threads: Optional[int], precision: str,
                 options: Dict[str, object]) -> None:
        if precision not in _PRECISION:
            raise UnsupportedOptionError(
                f"MNN precision {precision!r} unknown; accepted: {', '.join(_PRECISION)}")
        MNN = _mnn()
        nn, F = MNN.nn, MNN.expr
        self._F = F
        self._path = path
        config = {"backend": str(options.get("backend", "CPU")),
                  "numThread": int(threads or 4), "precision": _PRECISION[precision]}
        with capture_native_output() as out:
            try:
                self._rt = nn.create_runtime_manager((config,))
                if options.get("winograd") is False:
                    self._rt.set_hint(_HINT_WINOGRAD_MEMORY_LEVEL, 0)
                # empty name lists: the module takes the inputs and outputs the file
                # declares, and get_info() names them in forward()'s order (one load;
                # loading again with the names read back cost a second parse and weight
                # unpacking: 0.15 s for ResNet-18, more for bigger files)
                self._module = nn.load_module_from_file(path, [], [], runtime_manager=self._rt)
                info = self._module.get_info() if self._module is not None else None
                names_in = list(info["inputNames"]) if info else []
                names_out = list(info["outputNames"]) if info else []
                if info and len(info["inputs"]) != len(names_in):
                    # seen once with a file carrying ONNX metadata: describe it by name
                    self._module = nn.load_module_from_file(path, names_in, names_out,
                                                            runtime_manager=self._rt)
                    info = self._module.get_info() if self._module is not None else None
            except Exception as exc:  # the binding raises plain Exceptions
                info = None
                load_error = str(exc)
            else:
                load_error = ""
        if info is None:
            msg = "; ".join(out.lines()[-5:]) or load_error or "MNN returned no module"
            raise EngineError(f"MNN could not load {path}: {msg}")
        dt = _dtypes(F)
        self._formats = []
        self.inputs = []
        for name, var in zip(names_in, info["inputs"]):
            fmt = var.data_format
            self._formats.append(F.NHWC if fmt == F.NHWC else F.NCHW)
            self.inputs.append(TensorInfo(
                name=name, shape=tuple(int(d) if int(d) >= 0 else None for d in var.shape),
                dtype=dt.get(var.dtype, np.dtype(np.float32)),
                layout="NHWC" if fmt == F.NHWC else "NCHW"))
        self._var_dtypes = [var.dtype for var in info["inputs"]]
        self._out_names = names_out
        self._outputs: Optional[List[TensorInfo]] = None

    @property
    def outputs(self) -> List[TensorInfo]:  # type: ignore[override]
        """MNN's module API does not describe outputs: learn them from one run on zeros
        (two when inputs have dynamic dims: the output dims that follow them are dynamic)."""
        if self._outputs is None:
            self.run([np.zeros(i.concrete_shape(), i.dtype) for i in self.inputs])
            if self._outputs and any(i.is_dynamic for i in self.inputs):
                self._mark_dynamic_outputs()
        return self._outputs or []

    def _mark_dynamic_outputs(self) -> None:
        bigger = [np.zeros(tuple(2 * d if not isinstance(s, int) or s < 0 else d
                                 for d, s in zip(i.concrete_shape(), i.shape)), i.dtype)
                  for i in self.inputs]
        try:
            with capture_native_output():
                other = self._forward(bigger)
        except Exception:   # the model takes only some sizes: keep the shapes of the first run
            return
        self._outputs = [TensorInfo(name=o.name, dtype=o.dtype, shape=tuple(
            d if len(r.shape) == len(o.shape) and d == e else None
            for d, e in zip(o.shape, r.shape)))
            for o, r in zip(self._outputs, other)]

    def _forward(self, arrays: Sequence[np.ndarray]):
        F = self._F
        feeds = [F.const(np.ascontiguousarray(a), list(a.shape), fmt, vdt)
                 for a, fmt, vdt in zip(arrays, self._formats, self._var_dtypes)]
        outs = self._module.forward(feeds)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        if len(outs) != len(self._out_names):  # MNN's way of failing: an empty list
            raise RuntimeError(f"MNN returned {len(outs)} outputs, expected "
                               f"{len(self._out_names)}")
        result = []
        for o in outs:
            if o.data_format == F.NC4HW4:
                o = F.convert(o, F.NCHW)
            result.append(np.array(o.read(), copy=True))
        return result

    def run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        try:
            result = self._forward(arrays)
        except Exception:
            # Run again with the native output captured to get MNN's own message.
            with capture_native_output() as out:
                try:
                    self._forward(arrays)
                except Exception as exc:
                    err = str(exc)
                else:
                    err = "(it succeeded when retried)"
            detail = "; ".join(out.lines()[-4:]) or err
            raise EngineError(f"MNN failed to run the model: {detail}") from None
        if self._outputs is None:
            self._outputs = [TensorInfo(name=n, shape=tuple(r.shape), dtype=r.dtype)
                             for n, r in zip(self._out_names, result)]
        return result

    def op_counts(self) -> Dict[str, int]:
        """Op types as MNN stores them (one expression per op), read with the expr API."""
        counts: Dict[str, int] = {}
        with capture_native_output():
            try:
                exprs = self._F.load_as_dict(self._path)
            except Exception:  # op counts are informative only
                return counts
        for var in exprs.values():
            counts[var.op_type] = counts.get(var.op_type, 0) + 1
        return counts

    def close(self) -> None:
        self._module = None
        self._rt = None
