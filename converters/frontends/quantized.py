"""Quantized sources: models that carry their own quantization, recognized as their
float model plus what they carried.

- a ``torch.ao.quantization`` QAT or calibrated PTQ model (eager or FX graph mode) or a
  torchao PT2E graph (prepared or
  converted): ``split_qat`` gives its float twin (what gets exported); its
  ``TrainedProducer`` gives its table for the exported graph and PyTorch's own int8
  simulation (the verification reference of an int8 conversion);
- an ONNX model holding QuantizeLinear/DequantizeLinear pairs: ``split_qdq`` gives the
  float model, the table its Q/DQ pairs held, and the QDQ model's own simulation.

``converters.frontends.recognize`` calls both; ``converters.quantize.prepare_int8``
turns what they carried into the table every int8 backend gets.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from converters.errors import ConversionError


def _holds(obj: Any, module: str, cls: str) -> bool:
    """Whether ``obj`` is an nn.Module holding a ``module.cls`` (False without torch)."""
    if not hasattr(obj, "named_modules") or not callable(obj.named_modules):
        return False
    try:
        kind = getattr(__import__(module, fromlist=[cls]), cls)
    except (ImportError, AttributeError):
        return False
    return any(isinstance(m, kind) for _, m in obj.named_modules())


def is_qat_model(obj: Any) -> bool:
    """An nn.Module holding torch.ao fake-quant modules (prepared for QAT)."""
    return _holds(obj, "torch.ao.quantization", "FakeQuantizeBase")


_INT8_KERNELS = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized",
                 "torch.nn.quantized", "torch.nn.intrinsic.quantized",
                 "torch.ao.nn.quantized.dynamic", "torch.ao.nn.quantized.reference")


def int8_kernel_modules(obj: Any) -> List[Tuple[str, str]]:
    """(name, class) of the modules of a model torch.ao already converted to int8
    kernels (``convert_fx``, eager ``convert``, ``quantize_dynamic``); FloatFunctional,
    which eager QAT models hold as float code, is not one."""
    if not hasattr(obj, "named_modules") or not callable(obj.named_modules):
        return []
    out = []
    for name, mod in obj.named_modules():
        cls = type(mod)
        if cls.__module__.startswith(_INT8_KERNELS) and cls.__name__ != "FloatFunctional":
            out.append((name or "(the model)",
                        f"{cls.__module__.split('.modules')[0]}.{cls.__name__}"))
    return out


def refuse_converted(obj: Any) -> None:
    """A torch.ao model already converted to int8 kernels cannot be exported as the
    float model its table comes from (the exporter writes a QDQ graph, or refuses the
    dynamic kernels): refused, saying what to pass instead."""
    kernels = int8_kernel_modules(obj)
    if not kernels:
        return
    shown = ", ".join(f"{n} ({c})" for n, c in kernels[:3])
    dynamic = any(".dynamic." in c for _, c in kernels)
    if dynamic:
        hint = ("dynamic quantization (int8 weights, float activations) is "
                "precision='int8_weights' (--precision int8_weights) on the float model")
    else:
        hint = ("pass the model as it was before convert_fx/convert: prepared for QAT "
                "(prepare_qat, prepare_qat_fx) and trained; its fake-quant modules are the "
                "table. Or the float model with calibration_data= or a quantization table")
    raise ConversionError(f"the model is already converted to torch.ao int8 kernels "
                          f"({shown}{', ...' if len(kernels) > 3 else ''}), which edgert "
                          f"cannot read back as a float model and a table: {hint}")


def has_ptq_observers(obj: Any) -> bool:
    """An nn.Module holding torch.ao observers (``prepare``/``prepare_fx``; a QAT model's
    fake-quants hold them too: ``is_ptq_model`` tells the two apart)."""
    return _holds(obj, "torch.ao.quantization.observer", "ObserverBase")


@dataclass(frozen=True)
class TrainedProducer:
    """A kind of quantized torch model that brings its own table: how to recognise it,
    its float twin (what gets exported) and its table for the exported graph."""

    kind: str
    accepts: Callable[[Any], bool]
    float_model: Callable[[Any], Any]
    table: Callable[..., Any]          # (model, example inputs, onnx graph) -> MatchResult
    simulate: Callable[..., Any]       # (model, input tensors) -> PyTorch's own int8 simulation


def _pt2e_producer() -> TrainedProducer:
    from quant_tables.producers import pt2e_torch as p
    return TrainedProducer("PT2E", p.is_pt2e_model, p.float_model, p.table_from_pt2e,
                           p.pt2e_reference)


def _eager_qat_producer() -> TrainedProducer:
    from quant_tables.producers import qat_torch as p
    return TrainedProducer("QAT", is_qat_model, p.float_model, p.table_from_qat,
                           p.fake_quant_reference)


def is_ptq_model(obj: Any) -> bool:
    """A model prepared for post-training quantization and calibrated (``prepare`` /
    ``prepare_fx``): observers, no fake-quant."""
    return has_ptq_observers(obj) and not is_qat_model(obj)


def _ptq_producer() -> TrainedProducer:
    from quant_tables.producers import qat_torch as p
    return TrainedProducer("PTQ", is_ptq_model, p.float_model, p.table_from_qat,
                           p.observer_simulation)


# Checked in order. PT2E first: a prepared PT2E graph holds observer modules too; QAT
# before PTQ: a fake-quant holds an observer.
TRAINED_PRODUCERS: Tuple[Callable[[], TrainedProducer], ...] = (_pt2e_producer,
                                                                 _eager_qat_producer,
                                                                 _ptq_producer)


def trained_producer(obj: Any) -> Optional[TrainedProducer]:
    """The producer for a quantized torch model (eager or FX QAT, PT2E), or None."""
    if not hasattr(obj, "named_modules"):
        return None
    for make in TRAINED_PRODUCERS:
        producer = make()
        if producer.accepts(obj):
            return producer
    return None


def split_qat(model_or_path: Any) -> Tuple[Any, Any]:
    """(what to export, the quantized model or None): a QAT or PT2E model is
    exported as its float twin and brings its own table."""
    pair = isinstance(model_or_path, tuple) and len(model_or_path) == 2   # (module, inputs)
    model = model_or_path[0] if pair else model_or_path
    producer = trained_producer(model)
    if producer is None:
        return model_or_path, None
    twin = producer.float_model(model)
    return ((twin, model_or_path[1]) if pair else twin), model


@dataclass
class QDQSplit:
    """A QDQ ONNX source split into its float model and the table its Q/DQ pairs held."""

    model: Any                     # onnx.ModelProto without Q/DQ nodes
    table: Any                     # quant_tables.QuantTable
    name: Optional[str]            # the source file's stem (the proto has no path)
    notes: List[str] = field(default_factory=list)
    source: Any = None             # the QDQ model itself: a path or a ModelProto

    def simulate(self, feeds: Dict[str, Any], output_names: Sequence[str]) -> Dict[str, Any]:
        """The QDQ model's own outputs on ONNX Runtime: what its quantizer promised, the
        reference an int8 conversion of it is verified against."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        src = self.source if isinstance(self.source, str) else self.source.SerializeToString()
        sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        outs = sess.run(None, {n: feeds[n] for n in names})
        if len(outs) != len(output_names):
            raise ConversionError(f"the QDQ model gave {len(outs)} outputs, its float model "
                                  f"has {len(output_names)} ({list(output_names)})")
        return dict(zip(output_names, outs))


def _qdq_node_count(proto) -> int:
    return sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)


def refuse_integer_onnx(proto) -> None:
    """onnxruntime's integer forms (``quant_tables.producers.qdq_onnx.integer_form``) are
    refused up front, saying what to pass: each backend refused them node by node,
    listing every op it supports."""
    from quant_tables.producers.qdq_onnx import integer_form

    problem = integer_form(proto)
    if problem:
        raise ConversionError(problem)


def split_qdq(model_or_path: Any) -> Optional[QDQSplit]:
    """The float model and table of an ONNX source holding QuantizeLinear/DequantizeLinear
    pairs (onnxruntime ``quantize_static``, AIMET, NNCF, ...), or None for any other source.

    Neither backend takes Q/DQ nodes as they are (MNN's converter aborts on them), so a
    QDQ model converts as its float equivalent plus the table, like a QAT torch model.
    """
    import onnx

    path = os.fspath(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else None
    if path is not None:
        if not path.lower().endswith(".onnx") or not os.path.isfile(path):
            return None
        try:   # the graph only: a model with external data is checked without reading it
            head = onnx.load(path, load_external_data=False)
        except Exception:   # not ONNX after all: the front-end says what is wrong
            return None
    elif type(model_or_path).__name__ == "ModelProto":
        head = model_or_path
    elif hasattr(model_or_path, "graph") and type(model_or_path).__module__.startswith("onnx_ir"):
        import onnx_ir as ir
        head = ir.serde.serialize_model(model_or_path)
    else:
        return None
    refuse_integer_onnx(head)
    count = _qdq_node_count(head)
    if count == 0:
        return None
    from quant_tables.importers.qdq import import_qdq

    res = import_qdq(path if path is not None else head)
    name = os.path.splitext(os.path.basename(path))[0] if path else None
    notes = [f"QDQ source: {count} QuantizeLinear/DequantizeLinear node(s) read into a "
             f"quantization table ({len(res.table.activations)} activations, "
             f"{len(res.table.weights)} weights) and removed"] + list(res.notes)
    return QDQSplit(res.float_model, res.table, name, notes,
                    source=path if path is not None else head)
