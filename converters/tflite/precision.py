"""How constant weights are stored, per requested precision.

* ``fp32``: as they are.
* ``fp16``: float constants of at least ``fp16_min_elements`` elements are stored as
  FLOAT16 and widened by a DEQUANTIZE op, TFLite's post-training float16 recipe;
  XNNPACK folds the DEQUANTIZE at load time and may compute in fp16 where the CPU
  supports it.
* ``int8_weights`` (dynamic range): the weights of CONV_2D, DEPTHWISE_CONV_2D and
  FULLY_CONNECTED with at least ``int8_min_elements`` elements (TFLite's default,
  1024) are stored int8, symmetric, per output channel; the kernels run *hybrid*
  (activations quantized on the fly). Other constants stay float32.

The thresholds are ``TfliteOptions`` fields (converters/tflite/options.py).
Each lowering says what role a constant plays (``"conv"``, ``"depthwise"``,
``"fc"``, ``"bias"``, ``"other"``); the policy decides the storage and returns
the tensor index plus facts op versioning needs (``per_channel``).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from converters.tflite.builder import SubgraphBuilder
from converters.tflite.options import TfliteOptions
from converters.tflite.quant import quant_params, symmetric_int8

ROLES = ("conv", "depthwise", "fc", "bias", "other")
_INT8_AXIS = {"conv": 0, "fc": 0, "depthwise": 3}


class WeightPolicy:
    name = "fp32"

    def __init__(self, knobs: TfliteOptions) -> None:
        self.knobs = knobs
        self.stored = 0            # constants this policy stored in its own precision
        self.too_small = 0         # candidates left float32 for their size

    def store(self, sg: SubgraphBuilder, name: str, array: np.ndarray,
              role: str) -> Tuple[int, Dict[str, object]]:
        return sg.const(name, array), {}

    def notes(self) -> List[str]:
        """What the precision changed: a file where it changed nothing says so, since
        it is then the fp32 file under another name."""
        if self.name == "fp32":
            return []
        what = {"fp16": "float constant(s) stored as float16",
                "int8_weights": "conv/FC weight(s) stored as int8"}[self.name]
        knob = {"fp16": "fp16_min_elements", "int8_weights": "int8_min_elements"}[self.name]
        limit = getattr(self.knobs, knob)
        text = f"{self.name}: {self.stored} {what}"
        if self.too_small:
            text += (f"; {self.too_small} conv/FC weight(s) smaller than {limit} elements "
                     f"stay float32 (backend option {knob})")
        if not self.stored:
            text += "; nothing was stored at this precision: the file is float32"
        return [text]


class Fp16Policy(WeightPolicy):
    name = "fp16"

    def store(self, sg, name, array, role):
        min_elements = self.knobs.fp16_min_elements
        if array.dtype != np.float32 or array.size < min_elements or not array.any():
            self.too_small += role in _INT8_AXIS and array.dtype == np.float32 and \
                array.size < min_elements
            return sg.const(name, array), {}      # small or all-zero: fp16 would not save bytes
        self.stored += 1
        half = sg.const(f"{name}_fp16", array.astype(np.float16))
        out = sg.tensor(name, list(array.shape), np.float32)
        sg.op("DEQUANTIZE", [half], [out])
        return out, {}


class DynamicInt8Policy(WeightPolicy):
    name = "int8_weights"

    def store(self, sg, name, array, role):
        min_elements = self.knobs.int8_min_elements
        if role not in _INT8_AXIS or array.dtype != np.float32 or array.size < min_elements:
            self.too_small += role in _INT8_AXIS and array.dtype == np.float32
            return sg.const(name, array), {}
        self.stored += 1
        axis = _INT8_AXIS[role]
        q, scales = symmetric_int8(array, axis)
        params = quant_params(scales, [0] * len(scales), axis)
        return sg.const(name, q, quant=params), {"per_channel": True}


POLICIES = {p.name: p for p in (WeightPolicy, Fp16Policy, DynamicInt8Policy)}


def policy_for(precision: str, knobs: TfliteOptions) -> WeightPolicy:
    return POLICIES[precision](knobs)
