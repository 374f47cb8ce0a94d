"""Producers: code that makes a quantization table from something else (an eager QAT
model, a torchao PT2E graph, a QDQ ONNX model, calibration data). Each imports
torch/onnx lazily; the two torch producers share ``value_match.py``."""
