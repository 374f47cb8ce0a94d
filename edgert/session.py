"""``edgert.load`` and ``Session``: one API over every engine.

The Session owns what must behave the same whatever the engine: feeds by name
or position, shape, dtype, size and value checks with errors that name the input,
float feeds into quantized inputs (quantized with the input's scale and zero
point), float outputs out of quantized outputs unless ``raw=True``, the timing
protocol of ``benchmark``, runs with a deadline (in a worker process,
``edgert.isolated_run``), and calls from many threads (``edgert.engine_pool``).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Union, cast

import numpy as np

from edgert import timing
from edgert.engine_pool import EnginePool
from edgert.engines import pick_engine
from edgert.errors import InputError, UnsupportedOptionError
from edgert.limits import tensor_budget
from edgert.model_file import check_model_file
from edgert.tensors import TensorInfo, check_tensor_size, random_input, shape_str

if TYPE_CHECKING:
    from edgert.isolated_run import IsolatedRunner

Feeds = Union[None, np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray]]

CHECKS = ("isolated", "structure")


def default_threads() -> int:
    """Threads when none are asked for: up to 4 of the CPUs this process may use."""
    return max(1, min(4, timing.cpu_count()))


def load(path: Union[str, "os.PathLike[str]"], engine: Optional[str] = None,
         threads: Optional[int] = None, precision: str = "auto", check: str = "isolated",
         concurrency: int = 1, **options) -> "Session":
    """Open a model file (.tflite, .mnn or .onnx) with the engine its format needs.

    Args:
        path: the model file.
        engine: ``"litert"``, ``"mnn"`` or ``"onnxruntime"``; default: from the file.
        threads: CPU threads (default: up to 4).
        precision: ``"auto"``, ``"fp32"`` or ``"fp16"`` where the engine has such a
            switch (MNN); engines without one accept ``"auto"``/``"fp32"`` only.
        check: ``"isolated"`` (default) loads the file once in a child process first,
            so an engine crash on a damaged file cannot kill this process (cached per
            file); ``"structure"`` runs only the in-process checks.
        concurrency: how many calls of the session may run at once. The session is
            safe to call from any number of threads; with 1 (the default) overlapping
            calls wait for each other; with N, up to N copies of the model are made as
            calls overlap (engines that are thread-safe themselves share one copy).
        **options: engine options (``xnnpack=False`` for LiteRT, ``backend=`` for MNN,
            ``graph_optimization=`` for ONNX Runtime).
    """
    path = os.fspath(path)
    if check not in CHECKS:
        raise UnsupportedOptionError(f"check={check!r}; accepted: {', '.join(CHECKS)}")
    if threads is not None and int(threads) < 1:
        raise UnsupportedOptionError(f"threads must be at least 1, got {threads}")
    if int(concurrency) < 1:
        raise UnsupportedOptionError(f"concurrency must be at least 1, got {concurrency}")
    fcheck = check_model_file(path, options.pop("format", None))
    cls = pick_engine(fcheck.format, engine)
    if precision not in cls.precisions:
        raise UnsupportedOptionError(
            f"engine {cls.name!r} cannot honor precision={precision!r}; "
            f"accepted: {', '.join(cls.precisions)}")
    threads = int(threads) if threads else default_threads()
    if check == "isolated":
        from edgert.probe import probe_model
        probe_model(path, fcheck.format, cls.name, cls.version(),
                    dict(options, threads=threads, precision=precision))

    declared = fcheck.details.get("input_dims") or {}

    def make():
        return _with_declared_dims(cls(path, threads, precision, options), declared)

    t0 = time.perf_counter_ns()
    eng = make()
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    return Session(path, fcheck.format, eng, threads, precision, load_ms, fcheck.details,
                   pool=EnginePool(eng, make, int(concurrency)), options=options)


class Session:
    """A loaded model. Build it with ``edgert.load``."""

    def __init__(self, path: str, fmt: str, engine, threads: int, precision: str,
                 load_ms: float, file_details: Optional[dict] = None,
                 pool: Optional[EnginePool] = None,
                 options: Optional[Mapping[str, object]] = None) -> None:
        self.path = path
        self.format = fmt
        self.engine = engine          # the first instance: metadata, op counts
        self._pool = pool or EnginePool(engine, lambda: engine, 1)
        self._options = dict(options or {})
        self._runner: Optional["IsolatedRunner"] = None   # the worker of runs with a deadline
        self._outputs: Optional[List[TensorInfo]] = None
        self._runner_lock = threading.Lock()
        self.engine_name: str = engine.name
        self.engine_version: str = type(engine).version()
        self.threads = threads
        self.precision = precision
        self.load_ms = load_ms
        self.file_details = file_details or {}
        self._strict = getattr(engine, "strict_shapes", True) or \
            bool(self.file_details.get("dims_declared"))
        self._nonfinite_ok = getattr(engine, "computes_nonfinite", True)
        self._tensor_budget = tensor_budget()   # read once: feeds are checked on every run

    # -- description ---------------------------------------------------------------
    @property
    def inputs(self) -> List[TensorInfo]:
        return self.engine.inputs

    @property
    def outputs(self) -> List[TensorInfo]:
        if self._outputs is None:
            # MNN learns its outputs by running once: borrow an engine no other call uses
            with self._pool.borrow() as engine:
                self._outputs = engine.outputs
        return self._outputs

    def op_counts(self) -> Dict[str, int]:
        """Op type -> count, from the file when it tells, else from the engine."""
        counts = self.file_details.get("op_counts")
        if counts:
            return dict(counts)
        with self._pool.borrow() as engine:
            return engine.op_counts()

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}:{shape_str(i.shape)}" for i in self.inputs)
        return f"<edgert.Session {os.path.basename(self.path)} on {self.engine_version} ({ins})>"

    # -- running ---------------------------------------------------------------------
    def random_inputs(self, seed: int = 0, dynamic_size: Optional[int] = None
                      ) -> Dict[str, np.ndarray]:
        """Seeded random feeds that fit every input (dynamic dims set to ``dynamic_size``;
        by default the batch 1 and other dynamic dims ``edgert.tensors.DYNAMIC_DIM``).
        An input over the tensor budget of ``edgert.limits`` is an ``InputError``."""
        rng = np.random.default_rng(seed)
        return {i.name: random_input(i, rng, dynamic_size) for i in self.inputs}

    def prepare(self, feeds: Feeds = None, *, allow_nonfinite: bool = False,
                **named: np.ndarray) -> List[np.ndarray]:
        """Check feeds and turn them into the engine's input arrays, in input order."""
        infos = self.inputs
        by_name = _feeds_by_name(feeds, named, infos)
        arrays = []
        for info in infos:
            if info.name not in by_name:
                raise InputError(
                    f"missing input {info.name!r} (expects {shape_str(info.shape)} "
                    f"{np.dtype(info.dtype).name}); model inputs: {[i.name for i in infos]}")
            try:
                arrays.append(self._conform(info, by_name[info.name], allow_nonfinite))
            except MemoryError:
                raise InputError(f"input {info.name!r}: not enough memory to prepare it "
                                 f"(shape {shape_str(np.shape(by_name[info.name]))})") from None
        return arrays

    def _conform(self, info: TensorInfo, value, allow_nonfinite: bool) -> np.ndarray:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:   # ragged lists, objects numpy cannot read
            raise InputError(f"input {info.name!r} is not an array: {exc}") from None
        want = np.dtype(info.dtype)
        if arr.dtype.kind not in "biufc":
            raise InputError(f"input {info.name!r} expects dtype {want.name}, "
                             f"got {arr.dtype.name}")
        # a zero-stride view (np.broadcast_to) is small until it is made contiguous
        if arr.size * max(want.itemsize, arr.itemsize) > self._tensor_budget:
            check_tensor_size(info.name, arr.shape, want if want.itemsize > arr.itemsize
                              else arr.dtype)
        if arr.dtype.kind == "f" and not allow_nonfinite and (
                info.is_quantized or not self._nonfinite_ok) and not np.isfinite(arr).all():
            why = ("it is quantized: NaN and Inf have no integer value" if info.is_quantized
                   else f"{self.engine_name} does not compute with them (it turns them into "
                   "large finite numbers)")
            raise InputError(f"input {info.name!r} holds NaN or Inf, which it cannot take: "
                             f"{why}. Pass allow_nonfinite=True to run anyway")
        if info.is_quantized and info.quantization and np.issubdtype(arr.dtype, np.floating):
            arr = info.quantization.quantize(arr, want)
        elif arr.dtype != want:
            arr = _cast(info.name, arr, want)
        if arr.ndim != len(info.shape):
            raise InputError(
                f"input {info.name!r} expects rank {len(info.shape)} "
                f"(shape {shape_str(info.shape)}), got shape {shape_str(arr.shape)}")
        _check_layout(info, arr.shape)
        if self._strict:
            for want_d, got_d in zip(info.shape, arr.shape):
                if isinstance(want_d, int) and want_d >= 0 and want_d != got_d:
                    raise InputError(
                        f"input {info.name!r} expects shape {shape_str(info.shape)}, "
                        f"got {shape_str(arr.shape)}")
        if 0 in arr.shape:
            raise InputError(f"input {info.name!r} is empty (shape {shape_str(arr.shape)})")
        return np.ascontiguousarray(arr)

    def run(self, feeds: Feeds = None, *, raw: bool = False, timeout: Optional[float] = None,
            allow_nonfinite: bool = False, **named: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the model. Feeds: a dict by name, a list in input order, one array, or keywords.

        Returns outputs by name; quantized outputs come back as float32 unless ``raw``.
        Safe to call from many threads at once (see ``load(concurrency=)``).

        Args:
            timeout: seconds the run may take. Native code cannot be interrupted, so a
                run with a deadline happens in a worker process holding its own copy of
                the model (started on first use, kept for later calls); past the deadline
                the worker is killed and ``RunTimeoutError`` raised.
            allow_nonfinite: accept NaN/Inf in float feeds of quantized inputs and of
                engines that do not compute with them (MNN); refused by default, since
                the answer would be silently wrong.
        """
        arrays = self.prepare(feeds, allow_nonfinite=allow_nonfinite, **named)
        if timeout is not None:
            results = self._run_isolated(arrays, float(timeout))
        else:
            results = self._pool.run(arrays)
        out = {}
        for info, arr in zip(self.outputs, results):
            if not raw and info.is_quantized and info.quantization:
                arr = info.quantization.dequantize(arr)
            out[info.name] = arr
        return out

    def _run_isolated(self, arrays: List[np.ndarray], timeout: float) -> List[np.ndarray]:
        if timeout <= 0:
            raise UnsupportedOptionError(f"timeout must be positive, got {timeout}")
        with self._runner_lock:
            if self._runner is None:
                from edgert.isolated_run import IsolatedRunner

                self._runner = IsolatedRunner(self.path, self.engine_name, self.threads,
                                              self.precision, self._options)
            return self._runner.run(arrays, timeout)

    def benchmark(self, runs: int = 50, warmup: int = 5, inputs: Feeds = None, seed: int = 0,
                  min_seconds: float = 0.0, cooldown_s: float = 0.0) -> timing.BenchmarkResult:
        """Time the engine call with the shared protocol (see ``edgert.timing``)."""
        feeds = inputs if inputs is not None else self.random_inputs(seed)
        arrays = self.prepare(feeds)
        with self._pool.borrow() as engine:
            call = engine.run
            measured = timing.time_runs(lambda: call(arrays), runs=runs, warmup=warmup,
                                        min_seconds=min_seconds, cooldown_s=cooldown_s)
        lat = cast(List[float], measured["latencies_ms"])
        return timing.BenchmarkResult(
            runs=len(lat), warmup=warmup, threads=self.threads, init_ms=self.load_ms,
            first_run_ms=cast(float, measured["first_run_ms"]), peak_rss_mb=timing.peak_rss_mb(),
            engine=self.engine_name, engine_version=self.engine_version,
            model=os.path.basename(self.path), format=self.format, precision=self.precision,
            latencies_ms=lat, **timing.latency_stats(lat))

    def close(self) -> None:
        with self._runner_lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
        self._pool.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _with_declared_dims(engine, declared: Mapping[str, Sequence[Optional[int]]]):
    """The dims the file declares dynamic (``None``) reported as such, whatever the engine
    says: MNN's module reads a dynamic batch back as 1 (``edgert.mnn_summary``), where
    LiteRT and ONNX Runtime say ``?``. Same rank or the engine's shape is kept."""
    if declared:
        engine.inputs = [
            replace(i, shape=tuple(None if d is None else s for s, d in
                                   zip(i.shape, declared[i.name])))
            if len(declared.get(i.name, ())) == len(i.shape) else i
            for i in engine.inputs]
    return engine


_LAYOUTS = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}


def _check_layout(info: TensorInfo, got: Sequence[int]) -> None:
    """An ``InputError`` naming the layout when a feed is the input's shape with the
    channels moved to the other end (an NHWC image into an NCHW input, or the reverse):
    caught here, not as an engine's C++ message (MNN takes any shape and fails inside).
    The batch axis is left out of the comparison (MNN files often fix it to 1)."""
    rank = len(got)
    if rank not in _LAYOUTS or len(info.shape) != rank:
        return
    want = info.shape

    def fits(shape) -> bool:
        return all(not isinstance(w, int) or w < 0 or w == g for w, g in zip(shape, got[1:]))

    if fits(want[1:]):
        return
    first, last = _LAYOUTS[rank]
    if fits(tuple(want[2:]) + (want[1],)):          # the input is channels first
        expected, seen, perm = first, last, (0, rank - 1) + tuple(range(1, rank - 1))
    elif fits((want[-1],) + tuple(want[1:-1])):     # the input is channels last
        expected, seen, perm = last, first, (0,) + tuple(range(2, rank)) + (1,)
    else:
        return
    raise InputError(
        f"input {info.name!r} expects shape {shape_str(want)} ({expected}); got "
        f"{shape_str(tuple(got))}, which is {seen}: transpose it first "
        f"(x.transpose{perm})")


def _cast(name: str, arr: np.ndarray, want: np.dtype) -> np.ndarray:
    """float64 -> float32 or int64 -> int32 is what numpy users mean (when the ints fit:
    a silent wrap-around would be a wrong answer), and so is a bool into an integer input;
    another change of kind (ints into a float input, floats into an int input) is a
    mistake."""
    if arr.dtype.kind == want.kind:
        if want.kind in "ui" and arr.size and not np.can_cast(arr.dtype, want, casting="safe"):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < np.iinfo(want).min or hi > np.iinfo(want).max:
                raise InputError(f"input {name!r} expects {want.name}; its values "
                                 f"{lo}..{hi} do not fit")
        return arr.astype(want)
    # a bool into an integer input too (MNN stores a bool input as int32)
    if arr.dtype.kind in "bui" and want.kind in "ui" and np.can_cast(arr.dtype, want,
                                                                      casting="safe"):
        return arr.astype(want)
    raise InputError(f"input {name!r} expects dtype {want.name}, got {arr.dtype.name}")


def _feeds_by_name(feeds: Feeds, named: Mapping[str, np.ndarray],
                   infos: List[TensorInfo]) -> Dict[str, np.ndarray]:
    names = [i.name for i in infos]
    if feeds is None:
        by_name = {}
    elif isinstance(feeds, Mapping):
        by_name = dict(feeds)
    elif isinstance(feeds, np.ndarray):
        if len(infos) != 1:
            raise InputError(f"one array given but the model has {len(infos)} inputs: {names}")
        by_name = {names[0]: feeds}
    elif isinstance(feeds, (list, tuple)):
        if len(feeds) != len(infos):
            raise InputError(f"{len(feeds)} arrays given but the model has {len(infos)} "
                             f"inputs: {names}")
        by_name = dict(zip(names, feeds))
    else:
        raise InputError(f"feeds must be a dict, a list of arrays or one array, "
                         f"not {type(feeds).__name__}")
    by_name.update(named)
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise InputError(f"unknown input name(s) {unknown}; model inputs: {names}")
    return by_name
