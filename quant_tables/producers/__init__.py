"""Producers: code that makes a quantization table from something else (a QAT
model, a QDQ ONNX model, calibration data). Each imports torch/onnx lazily."""
