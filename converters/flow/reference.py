"""What each result is compared against: the verification inputs and the source's
outputs on them (``SourceModel.run_reference``), or, for an int8 conversion of a
model that carried its own quantization (QDQ ONNX, QAT, PT2E), that model's own
int8 simulation: reproducing it is the converter's job, how far it is from float is
the training's (and is noted)."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

import numpy as np

from converters.errors import ConversionError
from converters.verify import DYNAMIC_DIM, load_feeds, random_feeds


def verification_feeds(src: Any, verify_inputs: Any, seed: int
                       ) -> Tuple[Dict[str, np.ndarray], str]:
    """(feeds by input name, how they were made): the given inputs, else the torch
    example inputs, else seeded random ones."""
    names = src.input_names
    if verify_inputs is not None:
        desc = os.fspath(verify_inputs) if isinstance(verify_inputs, (str, os.PathLike)) \
            else "given arrays"
        return load_feeds(verify_inputs, names), desc
    if src.example_inputs is not None:
        return dict(src.example_inputs), f"torch example inputs (seed {seed})"
    specs = src.input_specs()
    dynamic = any(not isinstance(d, int) or d <= 0 for _, shape, _ in specs for d in shape[1:])
    return random_feeds(specs, seed), f"seeded random N(0,1) (seed {seed})" + (
        f"; dynamic dims: batch 1, others {DYNAMIC_DIM}" if dynamic else "")


def simulation_reference(simulated: Dict[str, np.ndarray],
                         float_reference: Dict[str, np.ndarray], what: str,
                         notes: List[str]) -> Dict[str, np.ndarray]:
    """``simulated`` as the reference, with a note of how far it is from float."""
    from converters.verify import metrics

    gaps = []
    for n, ref in float_reference.items():
        cos = metrics(ref, simulated[n]).get("cosine")
        gaps.append(f"{n} cosine {cos:.6f}" if cos is not None else f"{n} -")
    notes.append(f"verification reference: {what} (that simulation against the float "
                 f"model: " + ", ".join(gaps) + ")")
    return simulated


def torch_simulation(qat: Any, feeds: Dict[str, np.ndarray], src: Any
                     ) -> Dict[str, np.ndarray]:
    """PyTorch's own int8 simulation of a QAT or PT2E model, by output name."""
    import torch

    from converters.frontends.quantized import trained_producer
    from converters.frontends.torch_export import flatten_outputs

    producer = trained_producer(qat)
    if producer is None:
        raise ConversionError(f"{type(qat).__name__} is neither an eager QAT model nor a "
                              f"PT2E graph")
    inputs = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in src.input_names]
    outs = flatten_outputs(producer.simulate(qat, inputs))
    if len(outs) != len(src.output_names):
        raise ConversionError(f"the quantized model gave {len(outs)} outputs, its export has "
                              f"{len(src.output_names)}")
    return {n: o.detach().cpu().numpy() for n, o in zip(src.output_names, outs)}
