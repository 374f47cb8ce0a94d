"""Building one candidate: the base graph with each unit's choice applied, converted.

1. channels: each unit's local groups keep ``keep`` of their channels
   (``converters.pruning``, lowest-scored classes first), physically removed;
   then, with a trainer (``finetune.py``), a short fine-tuning of the pruned graph;
2. blocks: the unit's 1x1 convolutions zeroed in 1x4 output-channel blocks to
   ``sparsity`` by magnitude (``quant_tables.producers.sparsity_onnx.prune_onnx``),
   the sparsity table going to the backend (MNN's SIMD_OC sparse kernels);
3. precision: one quantization table for the whole file, its activation scales
   calibrated once on the base model (pruning only removes channels, so a range
   still covers what is left; a fine-tuned graph is calibrated again), weights'
   per-channel scales from their values, and a float override (``LayerOverride``)
   for every node of a float unit and for the
   ``int8-mixed`` units' blamed ops; then ``converters.convert`` writes the target.

Built files are kept per candidate key (``<out>/candidates/<key>/``), so a resumed
search, or the same candidate met twice, is built once.
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from converters.optimize.space import Candidate, UnitSpace
from converters.optimize.units import Unit


@dataclass
class Built:
    """A candidate's model file and what was done to each layer."""

    key: str
    path: str
    size: int
    layers: List[Dict[str, Any]] = field(default_factory=list)   # per-layer decisions
    notes: List[str] = field(default_factory=list)
    quant_table: Optional[str] = None
    sparsity_table: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Built":
        return cls(**d)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _exact(name: str) -> str:
    return f"^{re.escape(name)}$"


class CandidateBuilder:
    """Builds candidates of one base model for one target."""

    def __init__(self, base_onnx: str, units: List[Unit], space: UnitSpace, target: str,
                 out_dir: str, calibration_data: Any, activations: Any,
                 backend_options: Any = None, trainer: Any = None) -> None:
        self.base_onnx, self.units, self.space = base_onnx, units, space
        self.trainer = trainer        # finetune.Trainer: pruned graphs are fine-tuned
        # builds with and without fine-tuning (or with another trainer) never share a folder
        self.variant = "" if trainer is None else "-ft" + _digest(trainer.describe())
        self.target, self.out_dir = target, Path(out_dir)
        self.calibration_data, self.activations = calibration_data, activations
        self.backend_options = backend_options
        self._source = None
        self._lock = threading.Lock()

    def folder(self, cand: Candidate) -> Path:
        return self.out_dir / "candidates" / (cand.key + self.variant)

    def build(self, cand: Candidate) -> Built:
        """The candidate's model file (built now, or found from an earlier build)."""
        folder = self.folder(cand)
        meta = folder / "built.json"
        if meta.is_file():
            built = Built.from_dict(json.loads(meta.read_text()))
            if os.path.isfile(built.path):
                return built
        folder.mkdir(parents=True, exist_ok=True)
        built = self._build(cand, folder)
        meta.write_text(json.dumps(built.to_dict(), indent=1))
        return built

    def _base_model(self):
        from converters.frontends import load_source

        with self._lock:
            if self._source is None:
                self._source = load_source(self.base_onnx)
            return self._source.model.clone()

    def _build(self, cand: Candidate, folder: Path) -> Built:
        import onnx_ir as ir

        from converters.onnx_io import save_onnx

        model = self._base_model()
        layers = {l.weight: _layer_row(u, l, cand.options[u.index],
                                       self.space.mixed_float[u.index])
                  for u in self.units for l in u.layers}
        notes: List[str] = []
        keep = {_exact(w): cand.options[u.index].keep for u in self.units
                for w in u.prunable if cand.options[u.index].keep < 1.0}
        if keep:
            from converters.pruning import prune_channels

            report = prune_channels(model, keep=keep, cost=False)
            for row in report.layers:
                if row["weight"] in layers:
                    layers[row["weight"]]["channels"] = f"{row['before']} -> {row['after']}"
            notes.append(f"channel pruning: {report.removed_classes} channel(s) removed")
        sparsity = None
        blocks = {_exact(w): cand.options[u.index].sparsity for u in self.units
                  for w in u.sparsifiable if cand.options[u.index].sparsity > 0.0}
        if blocks:
            from quant_tables.producers.sparsity_onnx import prune_onnx

            proto, sparsity, result = prune_onnx(ir.serde.serialize_model(model), "1x4", blocks,
                                                 kinds=("conv1x1",))
            model = ir.serde.deserialize_model(proto)
            for row in result.layers:
                if row.name in layers:
                    layers[row.name]["sparsity"] = round(float(row.reached), 4)
        if self.trainer is not None and (keep or blocks):
            # after the block sparsity, which the fine-tuning keeps (its zeros are held):
            # sparsity applied to trained weights was never trained (chance accuracy at 75 %)
            model = self._finetuned(cand, model, masked=bool(blocks))
            notes.append(f"fine-tuned: {self.trainer.describe()}"
                         + (" (block-sparse zeros held)" if blocks else ""))
        path = folder / "candidate.onnx"
        save_onnx(model, path)
        return self._convert(cand, path, folder, sparsity, list(layers.values()), notes)

    def _finetuned(self, cand: Candidate, model, masked: bool = False):
        """The pruned graph fine-tuned, once per pruning choice (every unit's keep ratio
        and sparsity: the precisions do not change what is trained); ``masked``: the
        weights' zeros stay zero (block sparsity)."""
        import onnx
        import onnx_ir as ir

        keeps = json.dumps([o.keep for o in cand.options] if not masked else
                           [[o.keep, o.sparsity] for o in cand.options])
        path = self.out_dir / f"finetuned{self.variant}" / (_digest(keeps) + ".onnx")
        if path.is_file():
            return ir.serde.deserialize_model(onnx.load(str(path)))
        proto = ir.serde.serialize_model(model)
        self.trainer(proto, depth=self.depth(cand), masked=masked)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
        return ir.serde.deserialize_model(proto)

    def depth(self, cand: Candidate) -> float:
        """How much of the base ``cand`` takes away, what sets its fine-tuning budget:
        the share of the prunable channels it removes, or of the sparsifiable 1x1
        weights it zeroes (block sparsity), whichever is larger."""
        def share(weight, taken) -> float:
            total = sum(weight(u) for u in self.units)
            return sum(weight(u) * taken(cand.options[u.index]) for u in self.units) / total \
                if total else 0.0

        return max(share(lambda u: u.removable, lambda o: 1.0 - o.keep),
                   share(lambda u: len(u.sparsifiable), lambda o: o.sparsity))

    def quant_table(self, cand: Candidate):
        """The candidate's table: the base activations and its float overrides."""
        import copy

        from quant_tables import LayerOverride

        table = copy.deepcopy(self.activations)
        table.overrides = []
        if self.trainer is not None and any(o.keep < 1.0 or o.sparsity > 0.0
                                            for o in cand.options):
            table.activations = {}     # fine-tuned weights move the ranges: calibrate again
        for u in self.units:
            o = cand.options[u.index]
            if o.precision == "fp32":
                names = u.nodes
                why = f"unit {u.name} chosen fp32"
            elif o.precision == "int8-mixed":
                names = self.space.mixed_float[u.index]
                why = f"unit {u.name}: blamed by error localization"
            else:
                continue
            table.overrides += [LayerOverride(node=n, reason=why) for n in names]
        return table

    def _convert(self, cand: Candidate, path: Path, folder: Path, sparsity: Any,
                 layers: List[Dict[str, Any]], notes: List[str]) -> Built:
        from converters.api import convert

        precision = cand.precision
        table = self.quant_table(cand) if precision == "int8" else None
        sparsity_path = None
        if sparsity is not None:
            sparsity_path = str(folder / "sparsity.json")
            sparsity.save(sparsity_path)
        report = convert(str(path), targets=(self.target,), out_dir=str(folder), name="model",
                         precision=precision, quant_table=table,
                         calibration_data=self.calibration_data if table is not None else None,
                         sparsity_table=sparsity, backend_options=self.backend_options,
                         verify=False)
        rep = report.targets[0]
        notes += list(rep.notes)
        qt = str(folder / "model.int8.quant.json") if precision == "int8" else None
        return Built(key=cand.key, path=str(rep.path), size=int(rep.size_bytes or 0),
                     layers=layers, notes=notes, quant_table=qt, sparsity_table=sparsity_path)


def _layer_row(unit: Unit, layer, option, mixed_float: List[str]) -> Dict[str, Any]:
    precision = option.precision
    if precision == "int8-mixed":
        precision = "fp32 (mixed)" if layer.node in mixed_float else "int8"
    return {"unit": unit.name, "node": layer.node, "op": layer.kind, "weight": layer.weight,
            "precision": precision, "channels": f"{layer.out_channels}", "sparsity": 0.0}
