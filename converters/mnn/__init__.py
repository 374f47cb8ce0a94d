"""The MNN target: optimized ONNX -> MNN's own converter (its C binding, in a
child process) -> .mnn. ``backend.py`` registers it; ``support.py`` says which
nodes MNN can take and why not; ``legalize.py`` reshapes the few ONNX forms
MNN's converter mishandles; ``compression.py`` holds the hooks for full int8
and sparsity parameters."""
