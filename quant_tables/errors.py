"""The errors of the table formats and their producers.

They are ``EdgertError``s, so the CLI prints them instead of a traceback; they live
here rather than in the runtime because only the table code raises them.
"""
from __future__ import annotations

from edgert.errors import EdgertError


class TableError(EdgertError):
    """A quantization or sparsity table is invalid or does not match the graph."""


class TableSourceError(TableError):
    """A model a table is read from cannot give one: no fake-quant modules, Q/DQ
    nodes that do not pair, an unreadable ONNX file, an unseen observer."""
