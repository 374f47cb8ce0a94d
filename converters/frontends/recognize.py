"""What the user handed in, recognized in one place: the float model to export and
what it carried.

    rec = recognize("zoo:resnet18", bake_masks=True)
    rec.model    # what ``load_source`` exports (nn.Module, (module, inputs), ZooModel,
                 # ONNX path / ModelProto / onnx_ir.Model, SourceModel)
    rec.name     # the default base name of the written files, when the source says one
    rec.qat      # a quantized torch model (QAT, calibrated PTQ or PT2E); rec.model is its
                 # float twin
    rec.qdq      # a QDQ ONNX source: its table, notes and own simulation (QDQSplit)
    rec.masks_baked   # torch.nn.utils.prune masks were applied into a copy

The order is the one that lets each step see what the previous one unwrapped: a
spec (``zoo:NAME``, ``file.py:ATTR``, ``model.pt2``) is resolved first, since it
may hold a QAT model; a quantized torch model becomes its float twin; a QDQ ONNX
model becomes its float model plus the table its Q/DQ pairs held; pruning masks
are baked last, into the float model that will be exported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from converters.frontends.quantized import (QDQSplit, refuse_converted, split_qat, split_qdq,
                                            trained_producer)


@dataclass
class RecognizedSource:
    """The float model to export and what the source carried besides it."""

    model: Any                          # what converters.frontends.load_source takes
    name: Optional[str] = None          # from a spec or a file's stem; None: the exporter's
    qat: Any = None                     # the quantized torch model (eager QAT or PT2E)
    qdq: Optional[QDQSplit] = None      # the QDQ ONNX model's table and simulation
    masks_baked: bool = False           # torch.nn.utils.prune masks applied into a copy

    @property
    def quantized_kind(self) -> Optional[str]:
        """"QAT", "PT2E", "QDQ" or None: the kind of quantization the source carried."""
        if self.qdq is not None:
            return "QDQ"
        if self.qat is None:
            return None
        producer = trained_producer(self.qat)
        return producer.kind if producer is not None else "quantized"


def recognize(model_or_path: Any, name: Optional[str] = None, *,
              bake_masks: bool = False) -> RecognizedSource:
    """Recognize ``model_or_path`` (anything ``convert`` accepts).

    ``bake_masks``: export a torch model pruned with ``torch.nn.utils.prune`` from a copy
    with its masks applied, so its initializers carry the parameter names a sparsity
    table uses (``convert`` asks for it when a sparsity table is given).
    """
    from converters.frontends.spec import resolve_named

    model, name = resolve_named(model_or_path, name)
    module = model[0] if isinstance(model, tuple) and len(model) == 2 else model
    refuse_converted(module)
    model, qat = split_qat(model)
    qdq = split_qdq(model)
    if qdq is not None:
        model, name = qdq.model, name or qdq.name
    baked = False
    if bake_masks:
        from quant_tables.producers.sparsity_torch import bake_masks as bake

        masked = bake(model)
        baked, model = masked is not model, masked
    return RecognizedSource(model=model, name=name, qat=qat, qdq=qdq, masks_baked=baked)
