"""int8 results judged against the table's own simulation, in quantization steps.

The simulation (the table written back as QuantizeLinear/DequantizeLinear pairs, run
by ONNX Runtime with its optimizations off, so each pair is float arithmetic) is the
same on every CPU; the int8 kernels are not: XNNPACK's differ from LiteRT's reference
kernels, AVX-512 VNNI from AVX2 and from ARM. Each may round a requantized tensor one
step apart, so a result is held to ``converters.verify.int8_lsb_bound(depth)`` output
steps of the simulation, and a TFLite file is run with both kernel families this
machine has, so the bound is seen to hold across implementations, not for one."""
from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np

from converters.verify import int8_lsb_bound


def simulate(model: Any, table: Any, feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The table's QDQ simulation of the float ONNX ``model``: every graph output."""
    from converters.quant_debug import _sim_tensors
    from quant_tables.onnx_tensors import load_model

    proto = load_model(model)
    sim = _sim_tensors(proto, table, dict(feeds))
    return {o.name: sim[o.name] for o in proto.graph.output}


def depths(model: Any) -> Dict[str, int]:
    """Ops on the longest path to each output of the ONNX ``model``."""
    import onnx_ir as ir

    from converters.flow.reference import output_depths
    from quant_tables.onnx_tensors import load_model

    return output_depths(ir.serde.deserialize_model(load_model(model)))


def kernel_runs(path: str, feeds: Mapping[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
    """The file's outputs per kernel family: XNNPACK and LiteRT's reference kernels for
    .tflite, MNN's CPU kernels for .mnn."""
    import edgert

    families = {"xnnpack": {}, "reference kernels": {"xnnpack": False}} \
        if path.endswith(".tflite") else {"mnn": {"precision": "fp32"}}
    out = {}
    for family, options in families.items():
        with edgert.load(path, check="structure", **options) as sess:
            out[family] = sess.run(dict(feeds))
    return out


def assert_near_simulation(path: str, feeds: Mapping[str, np.ndarray],
                           sim: Mapping[str, np.ndarray], steps: Mapping[str, float],
                           depth: Mapping[str, int]) -> Dict[str, float]:
    """Every kernel family within ``int8_lsb_bound`` output steps of the simulation on
    every output named in ``steps``; returns the worst distance in steps per family."""
    worst = {}
    for family, got in kernel_runs(path, feeds).items():
        for name, step in steps.items():
            g = np.asarray(got[name], np.float64).reshape(np.shape(sim[name]))
            dist = float(np.max(np.abs(g - sim[name]))) / step
            bound = int8_lsb_bound(depth[name])
            assert dist <= bound, (f"{path} with {family}: output {name} is {dist:.1f} steps "
                                   f"from the simulation; bound {bound:.0f} (depth "
                                   f"{depth[name]})")
            worst[family] = max(worst.get(family, 0.0), dist)
    return worst
