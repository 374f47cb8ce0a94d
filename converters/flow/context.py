"""The typed context the conversion stages read and write.

``ConversionRequest`` is what the caller asked (``convert()``'s arguments), checked
by ``make_request`` before any work: targets, precision, each target's options
(a misspelt backend option is refused here, naming it), the sparsity table.
``ConversionContext`` holds the request and one field per stage output; the stage
list (stages.py) names which stage makes and which reads each field.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Set, Tuple, TypeVar, Union)

from converters.backends import (PRECISIONS, Backend, BackendOptions, get_backend,
                                 resolve_target_options)
from converters.errors import ConversionError
from edgert.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from converters.flow.report import ConversionReport, TargetReport
    from converters.frontends import SourceModel
    from converters.flow.inputs import InputSet
    from converters.frontends.recognize import RecognizedSource
    from converters.passes import PassReport
    from converters.pruning import ChannelPruneReport
    from quant_tables import QuantTable, SparsityTable
    from edgert.outputs import OutputFolder

# called at each stage's start (seconds None) and end: (stage, variant or None, seconds)
StageListener = Callable[[str, Optional[str], Optional[float]], None]


@dataclass
class ConversionRequest:
    """What the caller asked, checked before any work (see ``converters.api.convert``)."""

    source: Any                                    # model_or_path, as given
    targets: List[str]
    out_dir: Path
    options: Dict[str, BackendOptions]             # per target; tables filled in later
    name: Optional[str] = None
    precision: str = "auto"                        # "auto": the recognize stage decides
    precisions: List[str] = field(default_factory=list)   # every variant asked, in order
    overwrite: bool = False                        # replace files that exist in out_dir
    calibration_method: str = "minmax"             # int8 tensors a table lacks
    on_stage: Optional[StageListener] = None       # progress (the CLI's status line)
    example_inputs: Any = None
    input_shapes: Optional[Mapping[str, Sequence]] = None
    input_values: Optional[Mapping[str, Any]] = None   # inputs the user fixed (--input)
    dynamic_batch: bool = False
    exporter: str = "dynamo"
    opset: Optional[int] = None
    passes: Optional[Sequence] = None
    quant_table: Any = None                        # QuantTable, path or None (int8, QDQ)
    sparsity_table: Optional["SparsityTable"] = None   # loaded: channels and elements
    calibration_data: Any = None
    verify: bool = True
    thresholds: Optional[Mapping[str, float]] = None
    verify_inputs: Any = None
    verify_seed: int = 0
    verify_sets: int = 3                           # seeded input sets
    verify_timeout: Optional[float] = None         # per model; None: from its size
    load_check: str = "structure"
    threads: Optional[int] = None


@dataclass
class ConversionContext:
    """The request and every stage's output, by name (stages.py says who makes what)."""

    request: ConversionRequest
    backends: Dict[str, Backend]
    started: float = field(default_factory=time.perf_counter)
    # recognize
    recognized: Optional["RecognizedSource"] = None
    precision: str = "fp32"                        # what "auto" (or the caller) chose
    precision_reason: str = ""
    variants: List[Tuple[str, str]] = field(default_factory=list)   # (precision, why) each
    # plan
    outputs: Optional["OutputFolder"] = None       # out_dir: staged writes, no overwrite
    # export
    source: Optional["SourceModel"] = None         # the export, as the exporter left it
    notes: List[str] = field(default_factory=list)     # the source's notes, then the stages'
    # prune
    model: Any = None                              # onnx_ir.Model each backend gets a copy of
    reference_source: Optional["SourceModel"] = None   # what verification compares against
    pruning: Optional["ChannelPruneReport"] = None
    element_sparsity: Optional["SparsityTable"] = None  # the table without channel entries
    # passes
    pass_report: Optional["PassReport"] = None
    # sparsity
    backend_sparsity: Optional["SparsityTable"] = None  # under the optimized graph's names
    # save
    optimized_path: Optional[Path] = None
    # quantize
    quant_table: Optional["QuantTable"] = None     # the completed int8 table, or None
    held_out: Optional[List["InputSet"]] = None    # calibration samples kept for verifying
    # reference
    input_sets: Optional[List["InputSet"]] = None
    reference: Optional[List[Dict[str, "np.ndarray"]]] = None    # per input set
    reference_desc: str = ""
    reference_problem: Optional[str] = None        # no trustworthy reference: never passes
    depths: Dict[str, int] = field(default_factory=dict)         # per output (the bounds)
    class_scores: Optional[Set[str]] = None        # outputs the top-1 gate applies to
    pending_reference: Any = None                  # (future, pool) while it is computed
    reference_seconds: float = 0.0                 # its own time (overlapping convert's)
    # convert, verify
    targets: List["TargetReport"] = field(default_factory=list)
    # write
    report: Optional["ConversionReport"] = None
    # the runner's own
    stage_seconds: Dict[str, float] = field(default_factory=dict)
    variant_seconds: Dict[str, Dict[str, float]] = field(default_factory=dict)
    shared: Dict[str, Any] = field(default_factory=dict)   # kept across variants
    made: Set[str] = field(default_factory=lambda: {"request", "backends"})


T = TypeVar("T")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
AUTO = "auto"     # precision follows the source (converters.flow.stages.choose_precision)


def made(value: Optional[T], name: str) -> T:
    """``value``, an output of an earlier stage (``run_stages`` checks the order; this
    tells the type checker, and names the field should a stage be run alone)."""
    if value is None:
        raise RuntimeError(f"{name} is not made yet: run the stage that makes it first")
    return value


def target_list(targets: Union[str, Sequence[str]]) -> List[str]:
    """``"mnn,tflite"`` or ``("mnn", "tflite")`` as a list of target names."""
    if isinstance(targets, str):
        targets = [t for t in targets.split(",") if t.strip()]
    names = [t.strip().lower() for t in targets]
    if not names:
        raise ConversionError("no target given (e.g. targets=('mnn',))")
    return names


def precision_list(precision: Union[str, Sequence[str]]) -> List[str]:
    """``"fp32,fp16"``, ``["fp32", "int8"]`` or ``"auto"`` as a checked list: known
    names, each once, "auto" only alone."""
    names = ([p for p in precision.split(",")] if isinstance(precision, str)
             else list(precision))
    names = [str(p).strip().lower() for p in names if str(p).strip()]
    if not names:
        raise InputError("no precision given (e.g. precision='fp32' or ['fp32', 'fp16'])")
    for p in names:
        if p != AUTO and p not in PRECISIONS:
            raise InputError(f"precision {p!r}; accepted: {AUTO}, {', '.join(PRECISIONS)}")
    if len(set(names)) < len(names):
        raise InputError(f"precision {','.join(names)} names a precision twice")
    if AUTO in names and len(names) > 1:
        raise InputError("precision 'auto' cannot be combined with other precisions")
    return names


def make_request(model_or_path: Any, targets: Union[str, Sequence[str]], *,
                 out_dir: Union[str, "os.PathLike[str]"], precision: Union[str, Sequence[str]],
                 io_layout: str, io_dtype: str, weight_block_size: int,
                 backend_options: Any, sparsity_table: Any,
                 **asked: Any) -> ConversionContext:
    """The context of a conversion whose request holds up: unknown targets, precisions
    and backend options, and unreadable sparsity tables, are refused here, before any
    export or file."""
    from converters.sparsity import load_sparsity_table

    names = target_list(targets)
    precisions = precision_list(precision)
    method = asked.get("calibration_method", "minmax")
    if method not in CALIBRATION_METHODS:
        raise InputError(f"calibration method {method!r}; accepted: "
                         f"{', '.join(CALIBRATION_METHODS)}")
    precision = precisions[0]
    backends = {t: get_backend(t) for t in names}           # unknown targets fail here
    if asked.get("passes"):
        from converters.passes import get_pass

        for p in asked["passes"]:                           # unknown passes fail here
            if isinstance(p, str):
                get_pass(p)
    knobs = resolve_target_options(backend_options, names)
    chosen = "fp32" if precision == AUTO else precision     # until the recognize stage
    options = {t: BackendOptions(precision=chosen, io_layout=io_layout, io_dtype=io_dtype,
                                 weight_block_size=weight_block_size, target_options=knobs[t])
               for t in names}
    request = ConversionRequest(
        source=model_or_path, targets=names, out_dir=Path(out_dir), options=options,
        precision=precision, precisions=precisions,
        sparsity_table=load_sparsity_table(sparsity_table), **asked)
    return ConversionContext(request=request, backends=backends)
