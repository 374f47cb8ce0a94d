"""quant_tables: the quantization-table and sparsity-table formats (schema,
load/save, validation) and their producers (QAT models, QDQ ONNX, calibration,
AIMET and TensorRT imports). numpy only at import; torch/onnx lazily in producers.
"""
