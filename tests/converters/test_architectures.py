"""Architectures new users bring (``architectures.py``) convert to both targets and match
PyTorch under the fp32 gates; each was a probe of something the zoo does not hold."""
from __future__ import annotations

import pytest

from converters import convert
from tests.converters import architectures


@pytest.mark.parametrize("name", sorted(architectures.MODELS))
def test_architecture_converts_to_both_targets_and_matches(name, tmp_path):
    module, inputs = architectures.build(name)
    report = convert(module, "mnn,tflite", example_inputs=inputs, out_dir=tmp_path,
                     raise_on_error=False)
    for target in report.targets:
        assert target.error is None, f"{name} on {target.target}: {target.error}"
        assert target.verification.passed, (name, target.target,
                                            target.verification.failures)
    if name == "multi_io":      # logits is a graph output also read by Clip -> Exp
        assert any("MatMul/Gemm graph output" in n for n in report.target("mnn").notes)
