"""torchao PT2E quantization-aware training to full-int8 TFLite and MNN, on scikit-learn's digits.

    python examples/quantize_digits_pt2e.py --out digits_pt2e_out

The PT2E twin of ``quantize_digits.py`` (same data, network and float training):

1. exports the float CNN with ``torch.export`` (dynamic batch);
2. ``prepare_qat_pt2e`` with torchao's ``X86InductorQuantizer`` (per-channel
   int8 weights, uint8 activations), fine-tunes, ``convert_pt2e``;
3. converts the converted PT2E graph to full-int8 TFLite and MNN with
   ``converters.convert``: its float twin is exported and its Q/DQ parameters
   become the table. X86Inductor leaves the last Linear's output in float, so
   that tensor is calibrated on training images;
4. reports, on the held-out split, accuracies and each int8 model's top-1
   agreement with the converted PT2E graph run in PyTorch.

Needs ``pip install torchao``. The functions are reused by the test.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from examples.quantize_digits import (DigitsResult, _train, load_split,  # noqa: E402
                                      predict_file, predict_torch, train_float)


@dataclass
class PT2EResult(DigitsResult):
    prepared: object = None        # the QAT graph after fine-tuning (prepared stage)
    converted: object = None       # its convert_pt2e result: the reference simulation
    x_train: object = None


def pt2e_qat(float_model, x, y, seed: int = 0, epochs: int = 2):
    """(prepared QAT graph after fine-tuning, its convert_pt2e result)."""
    import torch
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    example = (torch.from_numpy(x[:2]),)
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(copy.deepcopy(float_model).train(), example,
                                    dynamic_shapes=({0: batch},)).module()
        quantizer = xiq.X86InductorQuantizer().set_global(
            xiq.get_default_x86_inductor_quantization_config(is_qat=True))
        prepared = allow_exported_model_train_eval(prepare_qat_pt2e(graph, quantizer))
        _train(prepared, x, y, epochs, 2e-4, seed + 1)   # .train() works after allow_...
        prepared.eval()
        converted = convert_pt2e(copy.deepcopy(prepared))
    return prepared, converted


def run(out_dir: str, seed: int = 0, epochs: int = 15, qat_epochs: int = 2,
        load_check: str = "isolated") -> "PT2EResult":
    """The whole flow; returns accuracies and agreements on the held-out split."""
    import torch
    from converters import convert
    from quant_tables.producers.pt2e_torch import pt2e_reference

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a small net: one thread is fastest, and deterministic
    try:
        x_tr, x_te, y_tr, y_te = load_split(seed)
        flt = train_float(x_tr, y_tr, seed, epochs)
        prepared, converted = pt2e_qat(flt, x_tr, y_tr, seed, qat_epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = convert(converted, targets=("tflite", "mnn"), precision="int8",
                             name="digits_pt2e", example_inputs=(torch.from_numpy(x_tr[:1]),),
                             calibration_data=x_tr[:256], out_dir=out_dir,
                             verify_inputs={"x": x_te[:1]}, load_check=load_check)
        sim = pt2e_reference(converted, (torch.from_numpy(x_te),)).numpy().argmax(1)
    finally:
        torch.set_num_threads(threads)
    preds = {"float (PyTorch)": predict_torch(flt, x_te), "PT2E converted (PyTorch)": sim}
    paths = {}
    for t in report.targets:
        paths[t.target] = t.path
        preds[f"int8 {t.target}"] = predict_file(t.path, x_te)
    acc = {k: float(np.mean(v == y_te)) for k, v in preds.items()}
    agree = {k: float(np.mean(v == sim)) for k, v in preds.items() if k.startswith("int8")}
    paths["table"] = os.path.join(out_dir, "digits_pt2e.int8.quant.json")
    paths["optimized"] = report.optimized_path
    return PT2EResult(acc, agree, paths, report, prepared, converted, x_tr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="digits_pt2e_out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from edgert.formatting import print_table

    res = run(args.out, args.seed)
    print_table("digits, held-out split (450 images)", ["model", "accuracy",
                                                        "agreement with PT2E"], res.rows())
    for k, v in res.paths.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
