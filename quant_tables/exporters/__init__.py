"""Exporters: a quantization table written in another tool's form (MNN
compression params, QDQ ONNX for simulation)."""
