"""The conversion flow, one small function per stage over ``ConversionContext``.

Each stage reads named fields of the context and writes others; ``STAGES`` below
declares the order and, per stage, what it needs and makes, so the flow reads in
a dozen lines. ``run_stages`` runs them in order, checks every need was made by an
earlier stage, and records each stage's wall time (``report.stages``).

Several precisions from one export (``precision=["fp32", "fp16", "int8"]``): the
stages up to ``save`` run once, the ``per_variant`` ones (quantize, reference,
convert, verify) once per precision, and ``write`` makes one report of every
variant. A float reference is computed once and reused by the float variants.

Files go through ``ctx.outputs`` (``edgert.outputs.OutputFolder``): the ``plan``
stage refuses, before any export, to replace files that exist (unless
``overwrite``), and each file is staged and moved into place only when complete.

Channel pruning runs before the passes (on the graph as exported, so BN folding
sees the pruned convolutions); the element sparsity entries follow the optimized
graph's names after them. Targets are converted first (check once, then write),
then verified, so a failing target never stops the others.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Sequence, Tuple

import numpy as np

from converters.errors import ConversionError
from converters.flow.context import AUTO, ConversionContext, made
from converters.flow.report import ConversionReport
# the flow's own needs (onnx-ir and the front-ends), imported with it: a runtime-only
# install asked to convert fails here, naming the missing package (the CLI says which extra)
from converters.frontends import load_source
from converters.passes import optimize


@dataclass(frozen=True)
class Stage:
    """One step of the flow: a function of the context, with its inputs and outputs."""

    name: str
    run: Callable[[ConversionContext], None]
    needs: Tuple[str, ...] = ()
    makes: Tuple[str, ...] = ()
    per_variant: bool = False          # run once per precision asked


def recognize(ctx: ConversionContext) -> None:
    """What the user handed in: float model, quantization it carried, masks, name; and
    the precision, which follows the source unless the caller chose one."""
    from converters.frontends.recognize import recognize as recognize_source

    req = ctx.request
    ctx.recognized = recognize_source(req.source, req.name,
                                      bake_masks=req.sparsity_table is not None)
    if len(req.precisions) > 1:
        ctx.variants = [(p, f"{p}, as asked") for p in req.precisions]
    else:
        ctx.variants = [choose_precision(req, ctx.recognized)]
    set_variant(ctx, ctx.variants[0])


def set_variant(ctx: ConversionContext, variant: Tuple[str, str]) -> None:
    """Make ``variant`` (precision, why) the one the per-variant stages work on."""
    req = ctx.request
    ctx.precision, ctx.precision_reason = variant
    for name, opts in req.options.items():
        req.options[name] = replace(opts, precision=ctx.precision)


def choose_precision(req, rec) -> Tuple[str, str]:
    """(precision, why). ``"auto"``: int8 when the source carries its own quantization
    (QDQ nodes, a QAT or PT2E model: TensorRT's explicit quantization reads Q/DQ so) or
    a table or calibration data came with it; fp32 otherwise."""
    if req.precision != AUTO:
        return req.precision, f"{req.precision}, as asked"
    kind = rec.quantized_kind
    if kind == "QDQ":
        return "int8", ("int8: the source holds QuantizeLinear/DequantizeLinear pairs (a QDQ "
                        "model), which say how to quantize it; precision='fp32' gives the "
                        "float model")
    if kind is not None:
        return "int8", (f"int8: the source is a {kind} model carrying its own quantization; "
                        f"precision='fp32' gives the float model")
    if req.quant_table is not None:
        return "int8", "int8: a quantization table was given"
    if req.calibration_data is not None:
        return "int8", "int8: calibration data was given"
    return "fp32", "fp32: a float model (no quantization in the source, no table or data)"


def plan(ctx: ConversionContext) -> None:
    """The files this conversion writes, known before any work: an output folder that
    is a file or not writable, or files that exist (without ``overwrite``), are refused
    here, naming them."""
    from converters.frontends import default_name
    from edgert.outputs import OutputFolder

    req, rec = ctx.request, made(ctx.recognized, "recognized")
    if any(p == "int8" for p, _ in ctx.variants) and req.quant_table is None \
            and req.calibration_data is None and rec.quantized_kind is None:
        raise ConversionError("precision='int8' needs a quantization table (quant_table=), "
                              "a QAT model, or calibration_data= to calibrate one")
    rec.name = default_name(rec.model, rec.name)      # the export keeps it
    ctx.outputs = OutputFolder(req.out_dir, overwrite=req.overwrite)
    ctx.outputs.refuse_existing(planned_files(ctx, rec.name))


def planned_files(ctx: ConversionContext, name: str) -> list:
    """Every file name the conversion writes into the output folder."""
    rec = made(ctx.recognized, "recognized")
    names = [f"{name}.optimized.onnx"]
    for precision, _ in ctx.variants:
        names += [target_file(name, precision, t, b) for t, b in ctx.backends.items()]
        if precision == "int8":
            names.append(f"{name}.int8.quant.json")
        elif rec.qdq is not None:
            names.append(f"{name}.qdq.quant.json")
    return names + [f"{name}.report.json"]


def target_file(name: str, precision: str, target: str, backend) -> str:
    """``m.mnn`` at fp32, ``m.fp16.mnn``, ``m.int8.tflite``...: never the same for two
    variants, and fp32 keeps the name it always had."""
    suffix = "" if precision == "fp32" else f".{precision}"
    return f"{name}{suffix}{backend.extension or '.' + target}"


def export(ctx: ConversionContext) -> None:
    """The ONNX graph of the float model (torch export or ONNX load). Verification's
    zygotes start meanwhile (``launch.warm``: their imports are off the critical path)."""
    req, rec = ctx.request, made(ctx.recognized, "recognized")
    if req.verify:
        from converters.flow.launch import warm

        warm()
    ctx.source = load_source(rec.model, req.example_inputs, req.input_shapes,
                             req.dynamic_batch, name=rec.name, exporter=req.exporter,
                             opset=req.opset, seed=req.verify_seed,
                             input_values=req.input_values)
    ctx.notes = list(ctx.source.notes)


def prune(ctx: ConversionContext) -> None:
    """The sparsity table's channel entries removed from a copy of the graph; the
    reference becomes the source with those channels masked."""
    from converters.sparsity import apply_channel_pruning, element_entries

    table = ctx.request.sparsity_table
    src = made(ctx.source, "source")
    ctx.model = src.model.clone()
    ctx.reference_source, ctx.pruning, notes = apply_channel_pruning(src, ctx.model, table)
    ctx.notes.extend(notes)
    ctx.element_sparsity = element_entries(table)


def passes(ctx: ConversionContext) -> None:
    """The pass pipeline (or the passes asked for), in place."""
    ctx.pass_report = optimize(ctx.model, ctx.request.passes)


def sparsity(ctx: ConversionContext) -> None:
    """The element entries under the optimized graph's names, checked against its weights."""
    from converters.sparsity import follow_renamed, graph_name_notes

    src = made(ctx.reference_source, "reference_source")
    table, renamed = follow_renamed(ctx.element_sparsity, ctx.model, src.torch_module)
    ctx.notes.extend(renamed + graph_name_notes(table, ctx.model))
    ctx.backend_sparsity = table


def save(ctx: ConversionContext) -> None:
    """``<name>.optimized.onnx``: the graph every backend starts from."""
    from converters.onnx_io import save_onnx

    name = made(ctx.source, "source").name
    outputs = made(ctx.outputs, "outputs")
    with outputs.writing(f"{name}.optimized.onnx") as staged:
        save_onnx(ctx.model, staged)
    ctx.optimized_path = outputs.final(f"{name}.optimized.onnx")


def quantize(ctx: ConversionContext) -> None:
    """precision="int8": the one completed table every backend gets (a QDQ source's
    table merged in; a QDQ source at another precision has its table saved). With
    calibration data, some samples are held out of the calibration for verification."""
    from converters.quantize import prepare_int8, resolve_table

    req, rec, src = ctx.request, made(ctx.recognized, "recognized"), made(ctx.source, "source")
    outputs = made(ctx.outputs, "outputs")
    table = req.quant_table
    int8 = ctx.precision == "int8"
    ctx.quant_table = ctx.held_out = None
    if rec.qdq is not None:
        if "qdq_notes" not in ctx.shared:
            ctx.shared["qdq_notes"] = True
            ctx.notes.extend(rec.qdq.notes)
        if int8:   # a table given as well wins where both have an entry
            user = resolve_table(table)
            table = rec.qdq.table if user is None else user.merged(rec.qdq.table)
        elif "qdq_table" not in ctx.shared:
            with outputs.writing(f"{src.name}.qdq.quant.json") as staged:
                rec.qdq.table.save(staged)
            ctx.shared["qdq_table"] = qdq_path = outputs.final(f"{src.name}.qdq.quant.json")
            ctx.notes.append(f"converted at {ctx.precision} as asked; the QDQ model's table "
                             f"is in {qdq_path}: precision 'int8' converts with it")
    if not int8:
        return
    data = req.calibration_data
    if data is not None and req.verify:
        from converters.flow.inputs import split_calibration

        data, ctx.held_out, note = split_calibration(data, src.input_specs(),
                                                     src.input_values)
        ctx.notes.append(note)
    elif data is not None and src.input_values:
        from converters.flow.inputs import split_calibration

        data = split_calibration(data, src.input_specs(), src.input_values)[0]
    plan = prepare_int8(ctx.model, table, calibration_data=data,
                        qat=rec.qat, example_inputs=src.example_inputs,
                        calibration_method=req.calibration_method)
    with outputs.writing(f"{src.name}.int8.quant.json") as staged:
        plan.table.save(staged)
    path = outputs.final(f"{src.name}.int8.quant.json")
    ctx.notes.extend(plan.notes + [f"int8 quantization table: {path}"])
    ctx.quant_table = plan.table


def reference(ctx: ConversionContext) -> None:
    """Verification's input sets and what the results must match on each; the graph
    facts the gates need (each output's depth, the classifier outputs).

    The input sets are made here; the source's outputs on them are computed in a thread
    while the targets convert (it needs neither: ONNX Runtime or PyTorch on the source,
    which release the GIL while MNN's converter runs in its child), and each target is
    run on the sets as soon as it is written (``convert_targets``). ``await_reference``
    collects the reference before any target's file is moved into place, so a reference
    that fails still leaves no target written. The stage times stay a partition of the
    wall time (``reference`` is the launch; the computation is inside ``convert``'s);
    its own time is ``ctx.reference_seconds``."""
    req = ctx.request
    if not req.verify:
        return
    rec = made(ctx.recognized, "recognized")
    simulated = ctx.precision == "int8" and (rec.qdq is not None or rec.qat is not None)
    reusable = ctx.held_out is None and not simulated     # the float source on seeded sets
    if reusable and "float_reference" in ctx.shared:
        (ctx.input_sets, ctx.reference, ctx.reference_desc,
         ctx.reference_problem) = ctx.shared["float_reference"]
        return
    from concurrent.futures import ThreadPoolExecutor

    from converters.flow.inputs import verification_sets

    src = made(ctx.reference_source, "reference_source")
    sets = verification_sets(src, req.verify_inputs, req.verify_seed, req.verify_sets,
                             ctx.held_out)
    ctx.input_sets = sets         # what the targets run (the reference may drop some)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgert-reference")
    ctx.pending_reference = (pool.submit(_timed_reference, ctx, reusable, sets), pool)


def await_reference(ctx: ConversionContext) -> None:
    """The reference started by ``reference``, applied to the context (its exception,
    if it raised); a no-op when none is pending."""
    pending, ctx.pending_reference = ctx.pending_reference, None
    if pending is None:
        return
    future, pool = pending
    try:
        seconds, notes, result, facts, reusable = future.result()
    finally:
        pool.shutdown(wait=True)
    ctx.notes.extend(n for n in notes[0] if n not in ctx.notes)
    ctx.notes.extend(notes[1])
    ctx.input_sets, ctx.reference, ctx.reference_desc, ctx.reference_problem = result
    ctx.depths, ctx.class_scores = facts
    if reusable:
        ctx.shared["float_reference"] = result
    ctx.reference_seconds += seconds


def _timed_reference(ctx: ConversionContext, reusable: bool, sets: list):
    """(seconds, notes, (sets, outputs, description, problem), (depths, class scores),
    reusable): computed off the main thread, so it writes nothing into ``ctx``."""
    from converters.flow.cpu import cpu_slot
    from converters.flow.reference import class_score_outputs, output_depths

    t = time.perf_counter()
    src = made(ctx.reference_source, "reference_source")
    with cpu_slot():
        notes, result = compute_reference(ctx, sets)
        facts = (output_depths(src.model), class_score_outputs(src.model))
    return time.perf_counter() - t, notes, result, facts, reusable


def compute_reference(ctx: ConversionContext, sets: list):
    """((reference notes, simulation notes), (input sets, outputs per set, description,
    problem)) of this variant on ``sets`` (those the source cannot run are dropped)."""
    from converters.flow.reference import (simulation_reference, source_reference,
                                           torch_simulation)

    rec = made(ctx.recognized, "recognized")
    src = made(ctx.reference_source, "reference_source")
    notes: list = []          # the reference's own notes (added once)
    simulated: list = []      # the simulations' notes (added as they come)
    sets, ref = source_reference(src, sets)
    notes.extend(ref.notes)
    outs = ref.outputs
    if ctx.precision == "int8" and rec.qdq is not None:
        outs = [simulation_reference(rec.qdq.simulate(s.feeds, src.output_names), o,
                                     "the QDQ model's own int8 simulation on ONNX Runtime",
                                     simulated, first=k == 0)
                for k, (s, o) in enumerate(zip(sets, outs))]
        ref.description = "the QDQ model's own int8 simulation (ONNX Runtime)"
    elif ctx.precision == "int8" and rec.qat is not None:
        outs = [simulation_reference(torch_simulation(rec.qat, s.feeds, src), o,
                                     f"PyTorch's own simulation of the {rec.quantized_kind} "
                                     f"model", simulated, first=k == 0)
                for k, (s, o) in enumerate(zip(sets, outs))]
        ref.description = f"PyTorch's own simulation of the {rec.quantized_kind} model"
    return (notes, simulated), (sets, outs, ref.description, ref.problem)


def convert_targets(ctx: ConversionContext) -> None:
    """Every target checked once and written from its own copy of the graph, and (when
    verifying) run on the input sets as soon as it is written, while the others are
    still converting: ``verify`` then only compares."""
    from converters.flow.targets import run_targets, start_verification
    from edgert.outputs import OutputFolder

    req = ctx.request
    name = made(ctx.source, "source").name
    outputs = made(ctx.outputs, "outputs")
    jobs, folders = [], []
    with contextlib.ExitStack() as stack:
        # one staging folder per target (targets are written at once, in threads): each
        # target's files move into place together when its writer is done
        for tname, backend in ctx.backends.items():
            options = replace(req.options[tname], quant_table=ctx.quant_table,
                              sparsity_table=ctx.backend_sparsity, count_ops=not req.verify,
                              saved_model=str(made(ctx.optimized_path, "optimized_path")))
            fname = target_file(name, ctx.precision, tname, backend)
            folder = stack.enter_context(OutputFolder(outputs.path, overwrite=outputs.overwrite))
            staged = stack.enter_context(folder.writing(fname))
            jobs.append((backend, tname, ctx.model, staged, options))
            folders.append((folder, fname))
        early = None
        if req.verify and ctx.input_sets is not None:
            early = partial(start_verification, sets=ctx.input_sets, threads=req.threads,
                            timeout_s=req.verify_timeout)
        try:
            reports = run_targets(jobs, after_write=early)
        finally:
            # the reference (computed meanwhile) before any file moves into place: if
            # it failed, the staged targets go with the exception, as if never written
            await_reference(ctx)
        for rep, (folder, _) in zip(reports, folders):
            if rep.error:
                folder.discard()            # a failed backend's partial files go
    for rep, (folder, fname) in zip(reports, folders):
        if rep.path:
            rep.path = str(folder.final(fname))
        ctx.targets.append(rep)


def verify(ctx: ConversionContext) -> None:
    """Every written model run on every input set, in one child process, and compared."""
    from converters.flow.targets import verify_targets

    await_reference(ctx)
    if not ctx.request.verify:
        return
    verify_targets(ctx, [t for t in ctx.targets if t.precision == ctx.precision])


def write(ctx: ConversionContext) -> None:
    """``<name>.report.json`` (the report holds every stage's time but this one's)."""
    from edgert.formatting import dumps_json

    src = made(ctx.reference_source, "reference_source")
    optimized = made(ctx.optimized_path, "optimized_path")
    report = ConversionReport(
        name=src.name, out_dir=str(ctx.request.out_dir), source=_source_dict(src, ctx.notes),
        optimized_path=str(optimized), optimized_size=optimized.stat().st_size,
        passes=ctx.pass_report,
        targets=ctx.targets, seconds=time.perf_counter() - ctx.started, pruning=ctx.pruning,
        stages=ctx.stage_seconds, variant_stages=ctx.variant_seconds,
        precision={"asked": ",".join(ctx.request.precisions),
                   "chosen": ",".join(p for p, _ in ctx.variants),
                   "why": "; ".join(why for _, why in ctx.variants)},
        verified=ctx.request.verify)
    outputs = made(ctx.outputs, "outputs")
    report.report_path = str(outputs.final(f"{src.name}.report.json"))
    with outputs.writing(f"{src.name}.report.json") as staged:
        staged.write_text(dumps_json(report.to_dict()))
    ctx.report = report


def _source_dict(src, notes) -> dict:
    return {"kind": src.kind, "path": src.source_path, "exporter": src.exporter,
            "notes": list(notes), "seconds": round(src.seconds, 4),
            "inputs": [{"name": n, "shape": [d if isinstance(d, int) else str(d) for d in s],
                        "dtype": np.dtype(t).name} for n, s, t in src.input_specs()],
            "input_values": {n: _value_text(v) for n, v in src.input_values.items()},
            "outputs": src.output_names}


def _value_text(v: np.ndarray) -> str:
    """A fixed input's value as the report shows it: the number, or shape and dtype."""
    return str(v.item()) if v.size == 1 else f"{'x'.join(map(str, v.shape))} {v.dtype.name}"


# The declared flow, in order. Adding a stage: one function above, one line here.
STAGES: Tuple[Stage, ...] = (
    Stage("recognize", recognize, ("request",), ("recognized", "precision", "variants")),
    Stage("plan", plan, ("recognized", "variants", "backends"), ("outputs",)),
    Stage("export", export, ("recognized", "outputs"), ("source", "notes")),
    Stage("prune", prune, ("source",), ("model", "reference_source", "pruning",
                                         "element_sparsity")),
    Stage("passes", passes, ("model",), ("pass_report",)),
    Stage("sparsity", sparsity, ("model", "element_sparsity", "reference_source"),
          ("backend_sparsity",)),
    Stage("save", save, ("model", "source"), ("optimized_path",)),
    Stage("quantize", quantize, ("model", "recognized", "source", "precision"),
          ("quant_table", "held_out"), per_variant=True),
    Stage("reference", reference, ("reference_source", "recognized", "held_out"),
          ("input_sets", "reference", "depths", "class_scores"), per_variant=True),
    Stage("convert", convert_targets, ("backends", "model", "quant_table",
                                       "backend_sparsity", "optimized_path"), ("targets",),
          per_variant=True),
    Stage("verify", verify, ("targets", "input_sets", "reference"), ("targets",),
          per_variant=True),
    Stage("write", write, ("reference_source", "notes", "optimized_path", "pass_report",
                           "targets", "pruning"), ("report",)),
)


def run_stages(ctx: ConversionContext, stages: Sequence[Stage] = STAGES
               ) -> ConversionContext:
    """Run ``stages`` in order over ``ctx``, timing each; a run of ``per_variant``
    stages is run once per precision (``ctx.variants``, set by ``recognize``)."""
    k = 0
    while k < len(stages):
        if not stages[k].per_variant:
            _run_one(ctx, stages[k], None)
            k += 1
            continue
        end = k
        while end < len(stages) and stages[end].per_variant:
            end += 1
        variants = ctx.variants or [(ctx.precision, ctx.precision_reason)]
        for variant in variants:
            set_variant(ctx, variant)
            for stage in stages[k:end]:
                _run_one(ctx, stage, variant[0] if len(variants) > 1 else None)
        set_variant(ctx, variants[0])
        k = end
    return ctx


def _run_one(ctx: ConversionContext, stage: Stage, variant) -> None:
    missing = [n for n in stage.needs if n not in ctx.made]
    if missing:
        raise RuntimeError(f"stage {stage.name!r} needs {missing}, which no earlier "
                           f"stage makes")
    listener = ctx.request.on_stage
    if listener is not None:
        listener(stage.name, variant, None)
    t = time.perf_counter()
    stage.run(ctx)
    seconds = time.perf_counter() - t
    ctx.stage_seconds[stage.name] = ctx.stage_seconds.get(stage.name, 0.0) + seconds
    if variant is not None:
        ctx.variant_seconds.setdefault(variant, {})[stage.name] = seconds
    ctx.made.update(stage.makes)
    if listener is not None:
        listener(stage.name, variant, seconds)
