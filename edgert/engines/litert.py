"""LiteRT engine: ``ai_edge_litert`` (current), else ``tflite_runtime`` (boards
that only have its last release, 2.14, which needs numpy<2).

Inputs and outputs are named by the model's SignatureDef when it has one (our
TFLite writer stores the source model's names there), else by tensor names.
XNNPACK is on by default, as in LiteRT; ``xnnpack=False`` turns it off.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from edgert.engines.base import Engine
from edgert.errors import EngineError, ModelFileError, UnsupportedOptionError
from edgert.native_output import capture_native_output
from edgert.tensors import QuantParams, TensorInfo


# LiteRT's load errors that mean the file itself is damaged, not that LiteRT lacks an op
_DAMAGE_WORDS = ("not a valid Flatbuffer", "model identifier", "Could not open",
                 "failed to verify", "Invalid tensor index", "is out of range")


def _import_interpreter():
    """(module, package name) of the interpreter to use, or raise ImportError."""
    try:
        from ai_edge_litert import interpreter as mod  # type: ignore
        return mod, "ai-edge-litert"
    except ImportError:
        pass
    from tflite_runtime import interpreter as mod  # type: ignore
    return mod, "tflite-runtime"


def _package_version(name: str) -> str:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # metadata missing in a vendored install
        return "unknown"


class LiteRTEngine(Engine):
    name = "litert"
    formats = ("tflite",)
    precisions = ("auto", "fp32")

    @classmethod
    def available(cls) -> Optional[str]:
        try:
            _import_interpreter()
        except ImportError as exc:
            return f"neither ai-edge-litert nor tflite-runtime imports ({exc})"
        except Exception as exc:  # tflite-runtime 2.14 under numpy 2 fails at import
            return f"the LiteRT interpreter fails to import: {exc}"
        return None

    @classmethod
    def version(cls) -> str:
        _, pkg = _import_interpreter()
        return f"{pkg} {_package_version(pkg)}"

    def __init__(self, path: str, threads: Optional[int], precision: str,
                 options: Dict[str, object]) -> None:
        if precision not in self.precisions:
            raise UnsupportedOptionError(
                f"LiteRT's CPU interpreter computes in the model's own precision; "
                f"precision={precision!r} is not a runtime switch here (convert the model "
                f"to fp16 or int8 instead). Accepted: {', '.join(self.precisions)}")
        mod, _ = _import_interpreter()
        kwargs = {"model_path": path}
        if threads:
            kwargs["num_threads"] = int(threads)
        if options.get("xnnpack") is False:
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" and its load errors
        # on the C stderr: keep them for the error message, off the user's console.
        with capture_native_output() as out:
            try:
                self._interp = mod.Interpreter(**kwargs)
                self._interp.allocate_tensors()
                error = ""
            except (ValueError, RuntimeError) as exc:
                error = str(exc)
        if error:
            native = "; ".join(ln for ln in out.lines() if "XNNPACK delegate" not in ln)
            damaged = any(w in error for w in _DAMAGE_WORDS)
            raise (ModelFileError if damaged else EngineError)(
                f"LiteRT could not load {path}: {error}" + (f" ({native})" if native else ""))
        try:
            self._in_idx, self._out_idx, names_in, names_out = self._io_tensors()
            details = {d["index"]: d for d in self._interp.get_input_details()}
            details.update({d["index"]: d for d in self._interp.get_output_details()})
            self.inputs = [_info(n, details[i]) for n, i in zip(names_in, self._in_idx)]
            self.outputs = [_info(n, details[i]) for n, i in zip(names_out, self._out_idx)]
        except (UnicodeDecodeError, KeyError, ValueError, TypeError) as exc:
            # names that are not UTF-8, a signature naming a tensor that is no input...
            raise ModelFileError(f"{path}: LiteRT cannot describe this model's inputs and "
                                 f"outputs ({type(exc).__name__}: {exc})") from None
        self._shapes = [tuple(details[i]["shape"]) for i in self._in_idx]

    def _io_tensors(self):
        interp = self._interp
        sigs = {}
        try:
            sigs = interp._get_full_signature_list() or {}
        except AttributeError:
            pass
        if len(sigs) >= 1:
            sig = sigs.get("serving_default") or next(iter(sigs.values()))
            in_map, out_map = sig["inputs"], sig["outputs"]
            order_in = {d["index"]: k for k, d in enumerate(interp.get_input_details())}
            order_out = {d["index"]: k for k, d in enumerate(interp.get_output_details())}
            ins = sorted(in_map.items(), key=lambda kv: order_in.get(kv[1], kv[1]))
            outs = sorted(out_map.items(), key=lambda kv: order_out.get(kv[1], kv[1]))
            return ([i for _, i in ins], [i for _, i in outs],
                    [n for n, _ in ins], [n for n, _ in outs])
        din, dout = interp.get_input_details(), interp.get_output_details()
        return ([d["index"] for d in din], [d["index"] for d in dout],
                [d["name"] for d in din], [d["name"] for d in dout])

    def run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        interp = self._interp
        try:
            resized = False
            for k, (idx, arr) in enumerate(zip(self._in_idx, arrays)):
                if arr.shape != self._shapes[k]:
                    interp.resize_tensor_input(idx, list(arr.shape), strict=False)
                    self._shapes[k] = arr.shape
                    resized = True
            if resized:
                interp.allocate_tensors()
            for idx, arr in zip(self._in_idx, arrays):
                interp.set_tensor(idx, arr)
            interp.invoke()
            return [interp.get_tensor(idx) for idx in self._out_idx]
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"LiteRT failed to run the model: {exc}") from None

    def op_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        try:
            for op in self._interp._get_ops_details():
                counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
        except AttributeError:
            pass
        return counts

    def close(self) -> None:
        self._interp = None


def _info(name: str, d: dict) -> TensorInfo:
    sig = d.get("shape_signature")
    shape = tuple(int(x) if x >= 0 else None for x in (sig if sig is not None and len(sig) else d["shape"]))
    qp = d.get("quantization_parameters") or {}
    scales = qp.get("scales")
    quant = None
    if scales is not None and len(scales) and np.issubdtype(d["dtype"], np.integer):
        axis = int(qp.get("quantized_dimension", 0)) if len(scales) > 1 else None
        quant = QuantParams(tuple(float(s) for s in scales),
                            tuple(int(z) for z in qp["zero_points"]), axis)
    return TensorInfo(name=name, shape=shape, dtype=np.dtype(d["dtype"]), quantization=quant,
                      layout=None)
