"""``optimize``: compress a model to a latency budget, measured on the device.

    from converters.optimize import optimize, Goal, SpaceSpec
    result = optimize(net, target="tflite", evaluate="digits.npz",
                      goal=Goal(speedup=2.0, max_drop=0.5), example_inputs=(x,),
                      out_dir="opt")                       # measured here, in process
    result.message, result.chosen_path, result.report_path

On a device of the farm, hand in its meter and its store (the CLI does this):

    from device_farm.latency_meter import FarmMeter
    from device_farm.search_store import FarmSearchLog
    meter = FarmMeter("pixel7", db="farm.sqlite", runs=50)
    result = optimize(..., meter=meter, log=FarmSearchLog("farm.sqlite"), device="pixel7")

``resume=SEARCH_ID`` continues a stopped search from its log (same model, target,
device and space), redoing nothing it already built, evaluated or measured.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from converters.optimize.goal import Goal
from converters.optimize.meter import STATISTICS, HostMeter
from converters.optimize.space import SpaceSpec
from converters.optimize.state import FileLog, SearchState, check_resumable
from edgert.errors import InputError


@dataclass
class OptimizeResult:
    """The end of a search: the chosen model, the report, everything measured."""

    search_id: str
    met: bool
    message: str
    chosen_path: Optional[str]
    files: Dict[str, str]
    report_path: str
    rows: List[Dict[str, Any]] = field(default_factory=list)
    predictions: List[Dict[str, Any]] = field(default_factory=list)
    state: Optional[SearchState] = None

    @property
    def chosen(self) -> Optional[Dict[str, Any]]:
        return next((r for r in self.rows if r["role"] == "chosen"), None)


def optimize(model: Any, *, evaluate: Any, goal: Goal, target: str = "tflite",
             out_dir: str = "edgert_optimize", device: str = "host", meter: Any = None,
             log: Any = None, space: Optional[SpaceSpec] = None, calibration_data: Any = None,
             statistic: str = "min", search_minutes: float = 15.0,
             example_inputs: Any = None, input_shapes: Any = None, name: Optional[str] = None,
             backend_options: Any = None, resume: Optional[str] = None,
             on_event: Optional[Callable[[Dict[str, Any]], None]] = None,
             context: Sequence[str] = (), compare: Optional[Dict[str, Any]] = None,
             eval_options: Optional[Dict[str, Any]] = None, train: Any = None,
             train_steps: Optional[int] = None,
             train_epochs: Optional[int] = None) -> OptimizeResult:
    """Search per-unit precision, channel pruning and block sparsity for ``goal`` on
    the device ``meter`` measures (default: this host, in process); see the module
    docstring. ``train``: fine-tune every pruned or block-sparse candidate (an
    .npz of inputs and labels, arrays, or ``train(module, ctx)``; ``trainer.py``), distilled
    from the unpruned graph, for ``train_steps`` optimizer steps at full pruning depth
    (default ``trainer.DEFAULT_STEPS``) or ``train_epochs`` passes over the data.
    Raises ``SearchStopped`` (state saved) when the device drops."""
    from converters.optimize import phases
    from converters.optimize.build import CandidateBuilder
    from converters.optimize.evaluate import load_evaluator
    from converters.optimize.prepare import calibration_sample, convert_base, prepare
    from converters.optimize.search import Search, SearchOptions

    if statistic not in STATISTICS:
        raise InputError(f"statistic {statistic!r}; choose {', '.join(STATISTICS)}")
    if search_minutes <= 0:
        raise InputError("--search-minutes must be positive")
    space = (space or SpaceSpec()).for_target(target)
    meter = meter or HostMeter()
    log = log or FileLog(out_dir, resume)
    saved = log.load() if resume else None
    if resume and saved is None:
        raise InputError(f"no saved search {resume!r} in {getattr(log, 'description', log)}")
    base = convert_base(model, target, out_dir, name=name, example_inputs=example_inputs,
                        input_shapes=input_shapes, backend_options=backend_options)
    evaluator = load_evaluator(evaluate, base.input_names, base.input_shapes,
                               **(eval_options or {}))
    calibration = calibration_data
    if calibration is None and hasattr(evaluator, "inputs"):
        calibration = calibration_sample(evaluator.inputs)
    config = _config(base, target, device, space, goal, statistic, evaluate, search_minutes)
    trainer = None
    if train is not None:
        from converters.optimize.trainer import Recipe, Trainer

        trainer = Trainer(train, base.input_names,
                          Recipe(steps=train_steps, epochs=train_epochs), teacher=base.onnx)
        config["train"] = trainer.describe()
    state = _state(log, saved, config)
    problem = prepare(base, target, space, calibration)
    _check_units(state, problem)
    builder = CandidateBuilder(base.onnx, problem.units, problem.space, target, out_dir,
                               calibration, problem.activations, backend_options, trainer)
    search = Search(problem, builder, evaluator, meter, goal, log, state,
                    SearchOptions(statistic=statistic, search_minutes=search_minutes), on_event)
    search.emit("start", phase="start", units=len(problem.units),
                search_id=state.search_id, meter=getattr(meter, "description", str(meter)))
    outcome = phases.run(search)
    return _write_outputs(search, outcome, out_dir, context, compare)


def _config(base, target, device, space, goal, statistic, evaluate, minutes) -> Dict[str, Any]:
    from converters.optimize.state import graph_fingerprint

    return {"model_name": base.name, "model_sha256": graph_fingerprint(base.onnx),
            "target": target, "device": device, "space": space.to_dict(),
            "goal": goal.to_dict(), "goal_text": goal.describe(), "statistic": statistic,
            "eval": evaluate if isinstance(evaluate, str) else getattr(
                evaluate, "description", type(evaluate).__name__),
            "search_minutes": minutes}


def _state(log, saved, config) -> SearchState:
    if saved is None:
        state = SearchState(log.search_id, config)
        log.save(state.to_dict())
        return state
    check_resumable(saved, config, getattr(log, "description", "search log"))
    state = SearchState.from_dict(saved)
    state.config.update(goal=config["goal"], goal_text=config["goal_text"],
                        search_minutes=config["search_minutes"])
    state.status = "running"
    return state


def _check_units(state: SearchState, problem) -> None:
    units = [u.to_dict() for u in problem.units]
    if state.units and [u["nodes"] for u in state.units] != [u["nodes"] for u in units]:
        raise InputError("the saved search was made on another graph (its units differ); "
                         "start a new search")
    state.units = units
    state.space = problem.space.to_dict()
    for note in problem.notes:
        if note not in state.notes:
            state.notes.append(note)


def _write_outputs(search, outcome, out_dir: str, context: Sequence[str],
                   compare: Optional[Dict[str, Any]]) -> OptimizeResult:
    from converters.optimize import report

    state = search.state
    rows = report.points(state)
    files: Dict[str, str] = {}
    decisions: List[Dict[str, Any]] = []
    chosen_path = None
    if outcome.chosen is not None and outcome.chosen.built:
        built = outcome.chosen.built
        decisions = built.get("layers", [])
        name = search.p.name
        ext = os.path.splitext(built["path"])[1]
        chosen_path = os.path.join(out_dir, f"{name}.optimized{ext}")
        shutil.copyfile(built["path"], chosen_path)
        files["model"] = chosen_path
        for key, suffix in (("quant_table", ".quant.json"), ("sparsity_table", ".sparsity.json")):
            if built.get(key) and os.path.isfile(built[key]):
                files[key] = os.path.join(out_dir, f"{name}.optimized{suffix}")
                shutil.copyfile(built[key], files[key])
    budget = outcome.budget_ms
    base_acc = (outcome.base.evaluation or {}).get("accuracy")
    floor = None if search.goal.max_drop is None or base_acc is None else \
        base_acc - search.goal.max_drop / 100.0
    title = (f"{search.p.name}, {state.config['target']} on {state.config['device']}: "
             f"accuracy against measured latency")
    other = report.load_rows(compare) if compare else None
    files["plot"] = report.plot_front(rows, os.path.join(out_dir, "front.png"), title, budget,
                                      floor, other, compare.get("search_id", "") if compare else "")
    summary = {"message": outcome.message, "met": outcome.met}
    md = report.markdown(state, rows, summary, decisions, outcome.predictions,
                         list(context), files)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(md)
    report.write_json(os.path.join(out_dir, "report.json"),
                      {"search_id": state.search_id, "outcome": summary, "points": rows,
                       "predictions": outcome.predictions, "decisions": decisions,
                       "files": files, "context": list(context), "state": state.to_dict()})
    return OptimizeResult(state.search_id, outcome.met, outcome.message, chosen_path, files, path,
                          rows, outcome.predictions, state)
