"""Short fine-tuning of a channel-pruned candidate, on the ONNX graph it is built from.

Removing channels without training costs accuracy that a few hundred steps of
training give back (NetAdapt's short-term fine-tuning, AMC's): measured on the
digits net, one unit's expansion width at keep 0.5 dropped top-1 from 98.9 % to
22 % untrained (docs/OPTIMIZE.md). Candidates are built from the optimized ONNX
(batch norms folded, channels physically removed), not from the user's module, so
the training runs on that graph: ``OnnxModule`` executes it with torch ops, the
weights and biases of its Conv/Gemm/MatMul layers as parameters, and the trained
values are written back into the graph before it is converted. A source that is
an ONNX file can be fine-tuned the same way.

What trains it is ``trainer.py`` (the built-in loop, distilled from the unpruned
graph, or the user's callable); this module only runs the graph.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np

from edgert.errors import InputError

#: Conv/Gemm/MatMul inputs that train (the weight and the bias)
TRAINED_INPUTS = {"Conv": (1, 2), "Gemm": (1, 2), "MatMul": (1,)}


def _attrs(node) -> Dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(pads: List[int]):
    n = len(pads) // 2
    begin, end = pads[:n], pads[n:]
    if begin == end:
        return tuple(begin), None
    # torch's F.pad takes the last dimension first
    flat: List[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        flat += [b, e]
    return (0,) * n, flat


def _conv(F, x, w, b, a):
    pad, explicit = _pads(list(a.get("pads", [0] * (2 * (w.dim() - 2)))))
    if explicit is not None:
        x = F.pad(x, explicit)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise InputError("fine-tuning: Conv with auto_pad SAME is not supported")
    conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[w.dim()]
    return conv(x, w, b, stride=tuple(a.get("strides", [1] * (w.dim() - 2))), padding=pad,
                dilation=tuple(a.get("dilations", [1] * (w.dim() - 2))),
                groups=int(a.get("group", 1)))


def _gemm(x, w, b, a):
    if a.get("transA", 0):
        x = x.t()
    y = x @ (w.t() if a.get("transB", 0) else w) * float(a.get("alpha", 1.0))
    return y if b is None else y + float(a.get("beta", 1.0)) * b


def _reduce_mean(x, axes, a):
    if axes is None:
        axes = a.get("axes")
    if axes is None:
        return x.mean(keepdim=bool(a.get("keepdims", 1)), dim=tuple(range(x.dim())))
    return x.mean(dim=tuple(int(v) for v in axes), keepdim=bool(a.get("keepdims", 1)))


def _ops(torch, F) -> Dict[str, Callable]:
    """ONNX op -> fn(inputs (tensors or None), attributes) -> output."""
    def clip(i, a):
        lo = i[1] if len(i) > 1 and i[1] is not None else a.get("min")
        hi = i[2] if len(i) > 2 and i[2] is not None else a.get("max")
        return torch.clamp(i[0], None if lo is None else float(lo),
                           None if hi is None else float(hi))

    def reshape(i, a):
        shape = [int(v) for v in i[1].tolist()]
        shape = [i[0].shape[k] if v == 0 and not a.get("allowzero", 0) else v
                 for k, v in enumerate(shape)]
        if shape and shape[0] == 1 and i[0].shape[0] != 1:
            shape[0] = i[0].shape[0]     # a graph exported at batch 1, trained in batches
        return i[0].reshape(shape)

    return {
        "Conv": lambda i, a: _conv(F, i[0], i[1], i[2] if len(i) > 2 else None, a),
        "Gemm": lambda i, a: _gemm(i[0], i[1], i[2] if len(i) > 2 else None, a),
        "MatMul": lambda i, a: i[0] @ i[1],
        "Relu": lambda i, a: F.relu(i[0]), "Clip": clip,
        "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
        "HardSigmoid": lambda i, a: torch.clamp(i[0] * float(a.get("alpha", 0.2))
                                                + float(a.get("beta", 0.5)), 0.0, 1.0),
        "HardSwish": lambda i, a: F.hardswish(i[0]),
        "Add": lambda i, a: i[0] + i[1], "Sub": lambda i, a: i[0] - i[1],
        "Mul": lambda i, a: i[0] * i[1], "Div": lambda i, a: i[0] / i[1],
        "ReduceMean": lambda i, a: _reduce_mean(i[0], i[1] if len(i) > 1 else None, a),
        "GlobalAveragePool": lambda i, a: i[0].mean(dim=tuple(range(2, i[0].dim())),
                                                    keepdim=True),
        "Reshape": reshape,
        "Flatten": lambda i, a: i[0].reshape(int(np.prod(i[0].shape[:a.get("axis", 1)])), -1),
        "Identity": lambda i, a: i[0],
        "Concat": lambda i, a: torch.cat([t for t in i if t is not None], dim=int(a["axis"])),
        "MaxPool": lambda i, a: F.max_pool2d(i[0], tuple(a["kernel_shape"]),
                                             tuple(a.get("strides", a["kernel_shape"])),
                                             _pads(list(a.get("pads", [0, 0, 0, 0])))[0]),
        "AveragePool": lambda i, a: F.avg_pool2d(i[0], tuple(a["kernel_shape"]),
                                                 tuple(a.get("strides", a["kernel_shape"])),
                                                 _pads(list(a.get("pads", [0, 0, 0, 0])))[0],
                                                 count_include_pad=bool(
                                                     a.get("count_include_pad", 0))),
    }


def unsupported_ops(proto) -> List[str]:
    """Op types of ``proto`` the executor cannot run (empty: it can be fine-tuned)."""
    import torch
    import torch.nn.functional as F

    known = _ops(torch, F)
    return sorted({n.op_type for n in proto.graph.node if n.op_type not in known})


def _module_class():
    import torch
    from torch import nn

    class OnnxModule(nn.Module):
        """An ONNX graph run with torch ops; Conv/Gemm/MatMul weights and biases train."""

        def __init__(self, proto) -> None:
            super().__init__()
            import torch.nn.functional as F
            from onnx import numpy_helper

            bad = unsupported_ops(proto)
            if bad:
                raise InputError(f"fine-tuning runs the graph with torch ops; it has no "
                                 f"{', '.join(bad)}")
            self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n))
                          for n in proto.graph.node]
            self.fns = _ops(torch, F)
            trained = {n.input[k] for n in proto.graph.node
                       for k in TRAINED_INPUTS.get(n.op_type, ()) if k < len(n.input)}
            self.params = nn.ParameterDict()
            self.names: Dict[str, str] = {}          # initializer -> parameter key
            self.consts: Dict[str, Any] = {}
            for init in proto.graph.initializer:
                arr = numpy_helper.to_array(init)
                t = torch.from_numpy(np.array(arr, copy=True))
                if init.name in trained and t.is_floating_point():
                    key = f"p{len(self.names)}"
                    self.names[init.name] = key
                    self.params[key] = nn.Parameter(t.float())
                else:
                    self.consts[init.name] = t
            init_names = {i.name for i in proto.graph.initializer}
            self.inputs = [i.name for i in proto.graph.input if i.name not in init_names]
            self.outputs = [o.name for o in proto.graph.output]

        def forward(self, *xs):
            env: Dict[str, Any] = dict(self.consts)
            env.update({k: self.params[v] for k, v in self.names.items()})
            env.update(zip(self.inputs, xs))
            for op, ins, outs, a in self.nodes:
                env[outs[0]] = self.fns[op]([env.get(n) if n else None for n in ins], a)
            out = [env[o] for o in self.outputs]
            return out[0] if len(out) == 1 else tuple(out)

        def write_back(self, proto) -> None:
            """The trained values into ``proto``'s initializers (in place)."""
            from onnx import numpy_helper

            for init in proto.graph.initializer:
                key = self.names.get(init.name)
                if key is not None:
                    arr = self.params[key].detach().numpy().astype(
                        numpy_helper.to_array(init).dtype)
                    init.CopyFrom(numpy_helper.from_array(arr, init.name))

    return OnnxModule


def onnx_module(proto):
    """``proto`` (an ``onnx.ModelProto``) as a trainable torch module."""
    return _module_class()(proto)
