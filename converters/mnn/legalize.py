"""ONNX forms that are valid but that MNN's converter mishandles, rewritten into
equivalent forms it takes. Applied to the MNN backend's own copy of the graph.

- LSTM/GRU/RNN with fewer than all outputs: the dynamo exporter emits an LSTM
  with only ``Y``; MNN's converter (3.6) then segfaults while building its
  While-loop RNN. Giving the node its ``Y_h`` (and ``Y_c``) outputs, unused,
  changes nothing numerically and converts cleanly.
"""
from __future__ import annotations

from typing import List

import onnx_ir as ir

from edgert.op_registry import OpRegistry, register_all

_RNN_OUTPUTS: OpRegistry[int] = OpRegistry("recurrent op output count")
register_all(_RNN_OUTPUTS, {"LSTM": 3, "GRU": 2, "RNN": 2}, source=__name__)


def complete_rnn_outputs(model: ir.Model) -> List[str]:
    """Give every LSTM/GRU/RNN all its outputs. Returns the names of the nodes changed."""
    changed = []
    for node in list(model.graph):
        want = _RNN_OUTPUTS.of_node(node)
        if not want or len(node.outputs) >= want:
            continue
        base = node.name or node.outputs[0].name or node.op_type
        new = ir.Node(node.domain, node.op_type, list(node.inputs),
                      attributes=list(node.attributes.values()), num_outputs=want,
                      name=node.name, version=node.version)
        for i, out in enumerate(new.outputs):
            if i < len(node.outputs):
                out.name = node.outputs[i].name
                out.shape, out.type = node.outputs[i].shape, node.outputs[i].type
            else:
                out.name = f"{base}_out{i}"
        model.graph.insert_before(node, new)
        for old_out, new_out in zip(node.outputs, new.outputs):
            ir.convenience.replace_all_uses_with(old_out, new_out)
            for i, g_out in enumerate(model.graph.outputs):
                if g_out is old_out:
                    model.graph.outputs[i] = new_out
        model.graph.remove(node, safe=True)
        changed.append(base)
    return changed


def legalize(model: ir.Model) -> List[str]:
    """Apply every MNN legalization; returns human-readable notes."""
    notes = []
    rnn = complete_rnn_outputs(model)
    if rnn:
        notes.append(f"gave {len(rnn)} RNN node(s) all their outputs (MNN's converter "
                     f"crashes otherwise): {', '.join(rnn)}")
    return notes
