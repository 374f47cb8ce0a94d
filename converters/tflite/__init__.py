"""The TFLite backend: a direct ONNX -> .tflite writer (no TensorFlow at any point).

Modules: ``backend`` (the registered "tflite" backend), ``support`` (can TFLite
run this node, and why not), ``registry`` (ONNX op -> lowering), ``ops/`` (one
module per op family), ``context`` (what a lowering sees), ``builder`` and
``writer`` (the flatbuffer), ``versions`` (LiteRT's op-version rules),
``precision`` and ``quant`` (weight storage, quantization hooks), ``patterns``
(multi-node folds such as erf-GELU). See docs/TFLITE.md.
"""
