"""What every engine module provides.

An engine wraps one inference library (MNN, LiteRT, ONNX Runtime). It sees
arrays already validated and converted to the engine's own input dtypes, in the
order of ``inputs``; the Session does feeds-by-name, dtype checks and
(de)quantization once for all engines.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgert.tensors import TensorInfo


class Engine(ABC):
    """One loaded model in one inference library."""

    #: short name used by ``edgert.load(engine=...)`` and in results
    name: ClassVar[str] = ""
    #: model formats this engine loads ("tflite", "mnn", "onnx")
    formats: ClassVar[Tuple[str, ...]] = ()
    #: runtime precisions this engine can honor
    precisions: ClassVar[Tuple[str, ...]] = ("auto", "fp32")
    #: ``run`` may be called from several threads at once on one instance; when False
    #: the Session gives each overlapping call an instance of its own (``engine_pool``)
    reentrant: ClassVar[bool] = False
    #: NaN and Inf in float inputs are computed with as IEEE arithmetic says; when
    #: False the Session refuses them unless the caller allows them
    computes_nonfinite: ClassVar[bool] = True

    inputs: List[TensorInfo]
    outputs: List[TensorInfo]

    @classmethod
    @abstractmethod
    def available(cls) -> Optional[str]:
        """``None`` when the library imports, else why not (shown to users)."""

    @classmethod
    @abstractmethod
    def version(cls) -> str:
        """The library's version string."""

    @abstractmethod
    def __init__(self, path: str, threads: Optional[int], precision: str,
                 options: Dict[str, object]) -> None:
        """Load ``path``; raise ``EngineError`` with the library's message on failure."""

    @abstractmethod
    def run(self, arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Run on arrays matching ``inputs`` (order, dtype); return arrays in ``outputs`` order.

        Engines resize themselves when an array's shape differs from the last run.
        """

    def op_counts(self) -> Dict[str, int]:
        """Op type -> count, when the engine can tell (empty when it cannot)."""
        return {}

    def close(self) -> None:
        """Free native resources early (optional)."""
