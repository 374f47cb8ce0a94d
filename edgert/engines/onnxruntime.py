"""ONNX Runtime engine: the reference every conversion is compared with, and a
runtime in its own right for boards that ship ONNX.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from edgert.engines.base import Engine
from edgert.errors import EngineError, ModelFileError, UnsupportedOptionError
from edgert.tensors import TensorInfo

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


# ORT's load errors that mean the file (or the external data it names) is at fault
_DAMAGE_WORDS = ("INVALID_PROTOBUF", "INVALID_GRAPH", "Protobuf parsing failed",
                 "External data", "external data", "external initializer",
                 "ModelProto does not have a graph")


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    formats = ("onnx",)
    precisions = ("auto", "fp32")
    # InferenceSession.run is thread-safe (ONNX Runtime's documentation): no pool needed
    reentrant = True

    @classmethod
    def available(cls) -> Optional[str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return f"onnxruntime is not installed ({exc}); pip install 'edgert[onnx]'"
        return None

    @classmethod
    def version(cls) -> str:
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__}"

    def __init__(self, path: str, threads: Optional[int], precision: str,
                 options: Dict[str, object]) -> None:
        if precision not in self.precisions:
            raise UnsupportedOptionError(
                f"ONNX Runtime (CPU) computes in the model's precision; precision={precision!r} "
                f"is not a runtime switch. Accepted: {', '.join(self.precisions)}")
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        level = options.get("graph_optimization", "all")
        so.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[str(level)]
        try:
            self._sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception classes
            msg = str(exc)
            # a name that is not UTF-8 fails as ORT turns its own message into a str
            damaged = isinstance(exc, UnicodeDecodeError) or any(w in msg for w in _DAMAGE_WORDS)
            cls = ModelFileError if damaged else EngineError
            raise cls(f"ONNX Runtime could not load {path}: {msg}") from None
        try:
            self.inputs = [_info(a) for a in self._sess.get_inputs()]
            self.outputs = [_info(a) for a in self._sess.get_outputs()]
        except UnicodeDecodeError as exc:   # a name or dim name that is not UTF-8
            raise ModelFileError(f"{path}: ONNX Runtime cannot describe this model's inputs "
                                 f"and outputs: a name that is not UTF-8 ({exc})") from None
        self._in_names = [i.name for i in self.inputs]
        self._out_names = [o.name for o in self.outputs]
        self._path = path

    def run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        try:
            return self._sess.run(self._out_names, dict(zip(self._in_names, arrays)))
        except Exception as exc:
            raise EngineError(f"ONNX Runtime failed to run the model: {exc}") from None

    def op_counts(self) -> Dict[str, int]:
        try:
            import onnx
        except ImportError:
            return {}
        counts: Dict[str, int] = {}
        try:
            model = onnx.load(self._path, load_external_data=False)
            for node in model.graph.node:
                counts[node.op_type] = counts.get(node.op_type, 0) + 1
        except Exception:  # noqa: BLE001 - op counts are informative; a damaged name is not fatal
            return {}
        return counts

    def close(self) -> None:
        self._sess = None


def _info(arg) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else (d if isinstance(d, str) else None)
                  for d in (arg.shape or ()))
    return TensorInfo(name=arg.name, shape=shape,
                      dtype=np.dtype(_ORT_TYPES.get(arg.type, np.float32)))
