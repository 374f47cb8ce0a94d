"""Importers: tables made by other tools (Qualcomm AIMET encodings, TensorRT
calibration caches) turned into edgert quantization tables."""
