"""ONNX's own node tests as conformance cases for edgert's converters.

The cases come from the installed ``onnx`` package (``onnx.backend.test.case.node``):
each is a one-node model with input and expected-output arrays computed by ONNX's
numpy reference. Recent wheels no longer ship the generated data, so the cases are
built in memory here; nothing is downloaded.

Which cases: float32 models (integer and bool tensors may appear beside float32 ones),
tensor inputs and outputs only, no ``_expanded`` twins (they test ONNX's function
bodies, not an op), no training ops and no random ops (their outputs cannot be
compared). Each case runs in two *variants*:

- ``inputs``: as shipped, every tensor a graph input;
- ``constants``: every input after the first made an initializer holding the
  test's own value, as real models hold weights, shapes, axes, pads, scales, sizes
  and indices. A refusal of the first variant ("axes must be constant") says little
  about real models; the second is what users meet.

Each case is also put in an op *family* (conv, pool, norm, ...), the unit the
coverage goal of the conformance table is stated in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

VARIANTS = ("inputs", "constants")

# Ops whose outputs are random, and the training ops: no expected output to compare.
_RANDOM_OPS = {"Bernoulli", "RandomNormal", "RandomNormalLike", "RandomUniform",
               "RandomUniformLike", "Multinomial"}
_TRAINING_DOMAINS = {"ai.onnx.preview.training"}
_SKIP_NAME = re.compile(r"(_expanded($|_)|^test_dropout.*(training|mask)|_training_)")

# Op families of the models edgert's users bring (vision, speech, text): the coverage
# goal (>= 90 % on each target, constants variant) is over these.
FAMILIES: Dict[str, Tuple[str, ...]] = {
    "conv": ("Conv", "ConvTranspose", "ConvInteger", "DeformConv"),
    "pool": ("AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
             "GlobalLpPool", "MaxUnpool", "MaxRoiPool", "RoiAlign"),
    "norm": ("BatchNormalization", "InstanceNormalization", "LayerNormalization",
             "GroupNormalization", "LpNormalization", "MeanVarianceNormalization",
             "RMSNormalization", "LRN"),
    "activation": ("Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid",
                   "HardSigmoid", "HardSwish", "Tanh", "Softplus", "Softsign", "Mish",
                   "ThresholdedRelu", "Softmax", "LogSoftmax", "Hardmax", "Clip", "Swish"),
    "elementwise": ("Add", "Sub", "Mul", "Div", "Pow", "Neg", "Abs", "Sqrt", "Exp", "Log",
                    "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Erf", "Sin", "Cos", "Tan",
                    "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Max",
                    "Min", "Sum", "Mean", "Mod", "Where", "Equal", "Less", "LessOrEqual",
                    "Greater", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf",
                    "Shrink", "Identity", "Cast", "CastLike", "BitShift"),
    "matmul": ("MatMul", "Gemm", "Einsum", "MatMulInteger"),
    "shape": ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split",
              "Slice", "Gather", "GatherElements", "GatherND", "Expand", "Tile", "Pad",
              "Shape", "Size", "DepthToSpace", "SpaceToDepth", "ScatterND", "ScatterElements",
              "Scatter", "ConstantOfShape", "Range", "OneHot", "Trilu", "ReverseSequence",
              "Compress", "NonZero", "CenterCropPad", "Col2Im"),
    "reduction": ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
                  "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                  "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "TopK"),
    "resize": ("Resize", "Upsample", "GridSample", "AffineGrid"),
    "recurrent": ("LSTM", "GRU", "RNN"),
    "attention": ("Attention", "RotaryEmbedding"),
}
_FAMILY_OF = {op: fam for fam, ops in FAMILIES.items() for op in ops}

_FLOAT = np.dtype(np.float32)
_OTHER_OK = {np.dtype(t) for t in (np.int64, np.int32, np.int8, np.uint8, np.bool_)}


@dataclass
class Case:
    """One node test in one variant: the model, its feeds and the expected outputs."""

    name: str                       # ONNX's test name, e.g. "test_conv_with_strides_padding"
    variant: str                    # "inputs" or "constants"
    op_type: str
    domain: str
    model: object                   # onnx.ModelProto
    feeds: Dict[str, np.ndarray]
    expected: Dict[str, np.ndarray]
    rtol: float = 1e-3
    atol: float = 1e-7
    constants: List[str] = field(default_factory=list)   # inputs made initializers

    @property
    def family(self) -> Optional[str]:
        return _FAMILY_OF.get(self.op_type)

    @property
    def key(self) -> str:
        return f"{self.name}[{self.variant}]"


def _tensor_dtype(value_info) -> Optional[np.dtype]:
    from onnx import helper

    t = value_info.type
    if not t.HasField("tensor_type"):
        return None
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type))
    except (KeyError, TypeError):
        return None


def _eligible(tc) -> bool:
    if _SKIP_NAME.search(tc.name) or not tc.data_sets:
        return False
    g = tc.model.graph
    if len(g.node) != 1:
        return False
    node = g.node[0]
    if node.op_type in _RANDOM_OPS or node.domain in _TRAINING_DOMAINS:
        return False
    dtypes = [_tensor_dtype(v) for v in list(g.input) + list(g.output)]
    if any(d is None or (d != _FLOAT and d not in _OTHER_OK) for d in dtypes):
        return False
    return _FLOAT in dtypes


@lru_cache(maxsize=1)
def _node_testcases() -> tuple:
    import warnings

    from onnx.backend.test.case import node

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(tc for tc in node.collect_testcases(None) if _eligible(tc))


def case_names() -> List[str]:
    return sorted({tc.name for tc in _node_testcases()})


def _constants_model(model, feeds: Dict[str, np.ndarray], names: Sequence[str]):
    """``model`` with graph inputs ``names`` turned into initializers of their test values."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [v for v in m.graph.input if v.name not in names]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for n in names:
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(feeds[n]), n))
    return m


def load_cases(names: Optional[Sequence[str]] = None,
               variants: Sequence[str] = VARIANTS) -> List[Case]:
    """The eligible node tests (all, or those in ``names``), in each of ``variants``.

    Only a case's first data set is used (ONNX's node tests have one)."""
    wanted = set(names) if names is not None else None
    out: List[Case] = []
    for tc in _node_testcases():
        if wanted is not None and tc.name not in wanted:
            continue
        g = tc.model.graph
        node = g.node[0]
        inputs, outputs = tc.data_sets[0]
        feeds = {v.name: np.asarray(a) for v, a in zip(g.input, inputs)}
        expected = {v.name: np.asarray(a) for v, a in zip(g.output, outputs)}
        rtol, atol = float(tc.rtol), float(tc.atol)
        for variant in variants:
            if variant == "inputs":
                out.append(Case(tc.name, variant, node.op_type, node.domain, tc.model,
                                feeds, expected, rtol, atol))
                continue
            consts = [v.name for v in list(g.input)[1:]]
            if not consts:
                continue    # one input: the variants are the same model
            model = _constants_model(tc.model, feeds, consts)
            out.append(Case(tc.name, variant, node.op_type, node.domain, model,
                            {k: v for k, v in feeds.items() if k not in consts}, expected,
                            rtol, atol, consts))
    return out
