"""Scoring a converted model: the accuracy that counts is the file's, run by edgert.

An evaluator takes a model file and returns an ``Evaluation``: top-1 accuracy in
[0, 1] and, when it has them, the first output of every sample (the search's
continuous damage measure compares them with the fp32 model's, ``damage``).

* ``LabelledEvaluator``: inputs and labels (an ``.npz`` with the model's input
  name(s), or ``x``/``inputs``/``images``, and ``labels``/``y``; or a folder of
  images in one sub-folder per class, read with the model's preprocessing);
* ``AgreementEvaluator``: inputs only; the score is top-1 agreement with the fp32
  model on them (its labels are the fp32 model's own answers);
* ``CallableEvaluator``: ``file.py:evaluate``, a function given an
  ``edgert.Session`` of the file that returns the accuracy (a float in [0, 1], or a
  dict with ``accuracy`` and optionally ``outputs``).

``load_evaluator(spec, ...)`` reads the ``--eval`` argument into one of these.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from edgert.errors import InputError

INPUT_KEYS = ("x", "inputs", "input", "images")
LABEL_KEYS = ("labels", "label", "y", "targets")


@dataclass
class Evaluation:
    """What an evaluator measured on one file."""

    accuracy: float
    samples: int
    seconds: float
    outputs: Optional[np.ndarray] = None       # (samples, ...) first output per sample

    def to_dict(self) -> Dict[str, Any]:
        return {"accuracy": self.accuracy, "samples": self.samples,
                "seconds": round(self.seconds, 3)}


def damage(outputs: Optional[np.ndarray], reference: Optional[np.ndarray]) -> Optional[float]:
    """How far a candidate's outputs moved from the fp32 model's: the mean squared
    difference over the variance of the reference (noise-to-signal power). Noise of
    independent changes adds up in power, which is what lets the search add one
    unit's damage to another's."""
    if outputs is None or reference is None or outputs.shape != reference.shape:
        return None
    ref = reference.astype(np.float64)
    var = float(np.mean((ref - ref.mean(axis=0, keepdims=True)) ** 2))
    return float(np.mean((outputs.astype(np.float64) - ref) ** 2)) / max(var, 1e-30)


def _session(path: str, threads: Optional[int]):
    import edgert

    precision = "fp32" if path.endswith(".mnn") else "auto"
    return edgert.load(path, threads=threads, precision=precision)


def _first_outputs(sess, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """Run every sample (batch 1) and stack the first output."""
    names = list(feeds)
    n = len(next(iter(feeds.values())))
    out = []
    for i in range(n):
        res = sess.run({k: feeds[k][i:i + 1] for k in names})
        out.append(np.asarray(next(iter(res.values()))).reshape(-1))
    return np.stack(out)


class LabelledEvaluator:
    """Top-1 accuracy on inputs with labels."""

    def __init__(self, inputs: Dict[str, np.ndarray], labels: Optional[np.ndarray],
                 description: str, threads: Optional[int] = 1) -> None:
        n = {len(v) for v in inputs.values()}
        if len(n) != 1:
            raise InputError(f"{description}: inputs of different lengths {sorted(n)}")
        if labels is not None and len(labels) != n.pop():
            raise InputError(f"{description}: {len(labels)} labels for "
                             f"{len(next(iter(inputs.values())))} inputs")
        self.inputs, self.labels = inputs, labels
        self.description, self.threads = description, threads

    @property
    def samples(self) -> int:
        return len(next(iter(self.inputs.values())))

    def __call__(self, path: str) -> Evaluation:
        t0 = time.perf_counter()
        sess = _session(path, self.threads)
        try:
            feeds = _match_inputs(self.inputs, [i.name for i in sess.inputs], self.description)
            outputs = _first_outputs(sess, feeds)
        finally:
            sess.close()
        acc = float("nan") if self.labels is None else \
            float(np.mean(outputs.argmax(axis=1) == self.labels))
        return Evaluation(acc, len(outputs), time.perf_counter() - t0, outputs)


class AgreementEvaluator(LabelledEvaluator):
    """Top-1 agreement with the fp32 model's answers on fixed inputs."""

    def bind_reference(self, reference: Evaluation) -> None:
        """Take the fp32 model's answers as the labels (the search calls this first)."""
        if reference.outputs is None:
            raise InputError("agreement needs the fp32 model's outputs")
        self.labels = reference.outputs.argmax(axis=1)


class CallableEvaluator:
    """A user's function scoring an ``edgert.Session``."""

    def __init__(self, fn: Callable[[Any], Any], description: str,
                 threads: Optional[int] = 1) -> None:
        self.fn, self.description, self.threads = fn, description, threads

    def __call__(self, path: str) -> Evaluation:
        t0 = time.perf_counter()
        sess = _session(path, self.threads)
        try:
            got = self.fn(sess)
        finally:
            sess.close()
        outputs = None
        if isinstance(got, Mapping):
            outputs = got.get("outputs")
            got = got.get("accuracy")
        if not isinstance(got, (int, float)) or not 0.0 <= float(got) <= 1.0:
            raise InputError(f"{self.description} returned {got!r}; it must return the "
                             "accuracy as a number in [0, 1] (or a dict with 'accuracy')")
        outs = None if outputs is None else np.asarray(outputs, dtype=np.float32)
        return Evaluation(float(got), -1 if outs is None else len(outs),
                          time.perf_counter() - t0, outs)


def _match_inputs(inputs: Dict[str, np.ndarray], names: List[str], where: str
                  ) -> Dict[str, np.ndarray]:
    if set(names) <= set(inputs):
        return {n: inputs[n] for n in names}
    if len(names) == 1 and len(inputs) == 1:
        return {names[0]: next(iter(inputs.values()))}
    raise InputError(f"{where}: the model's inputs are {names}; the evaluation data has "
                     f"{sorted(inputs)}")


def load_evaluator(spec: Any, input_names: Sequence[str], input_shapes: Mapping[str, Any],
                   *, preprocess: Optional[Dict[str, Any]] = None, agreement: bool = False,
                   limit: Optional[int] = None, threads: Optional[int] = 1):
    """An evaluator from the ``--eval`` argument (see the module docstring); an
    evaluator object is returned as it is."""
    if callable(spec) and not isinstance(spec, (str, os.PathLike)):
        return spec
    text = os.fspath(spec)
    if not os.path.exists(text) and ":" in text:
        return CallableEvaluator(_load_callable(text), text, threads)
    if os.path.isdir(text):
        inputs, labels = _image_folder(text, input_names, input_shapes, preprocess or {})
    elif text.endswith(".npz") and os.path.isfile(text):
        inputs, labels = _npz(text, input_names)
    else:
        raise InputError(f"--eval {text}: give an .npz of inputs and labels, a folder of "
                         "images in one sub-folder per class, or file.py:function")
    if limit:
        inputs = {k: v[:limit] for k, v in inputs.items()}
        labels = None if labels is None else labels[:limit]
    if agreement or labels is None:
        return AgreementEvaluator(inputs, None, f"{text} (agreement with fp32)", threads)
    return LabelledEvaluator(inputs, labels, text, threads)


def _npz(path: str, input_names: Sequence[str]):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    labels = next((arrays.pop(k) for k in LABEL_KEYS if k in arrays), None)
    inputs = {n: arrays[n] for n in input_names if n in arrays}
    if not inputs:
        key = next((k for k in INPUT_KEYS if k in arrays), None)
        if key is None or len(input_names) != 1:
            raise InputError(f"{path}: no array for the model's input(s) {list(input_names)} "
                             f"(arrays: {sorted(arrays)}; name them after the inputs, or 'x')")
        inputs = {input_names[0]: arrays[key]}
    inputs = {k: v.astype(np.float32) if v.dtype == np.float64 else v
              for k, v in inputs.items()}
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
    return inputs, labels


def _image_folder(path: str, input_names: Sequence[str], shapes: Mapping[str, Any],
                  options: Dict[str, Any]):
    """Images in one sub-folder per class (classes in sorted order = label index)."""
    from edgert.preprocess import preprocess, read_image, spec_for_input
    from quant_tables.calibration_data import image_files

    if len(input_names) != 1:
        raise InputError(f"{path}: an image folder scores a model with one image input")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if not classes:
        raise InputError(f"{path}: no class sub-folders (one folder of images per class)")
    spec = spec_for_input(list(shapes[input_names[0]]), input=input_names[0], **options)
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in image_files(os.path.join(path, cls)):
            xs.append(preprocess(read_image(f), spec))
            ys.append(label)
    if not xs:
        raise InputError(f"{path}: the class folders hold no images")
    return {input_names[0]: np.concatenate(xs)}, np.asarray(ys, dtype=np.int64)


def _load_callable(text: str) -> Callable[[Any], Any]:
    from converters.frontends.spec import _import

    target, _, attr = text.rpartition(":")
    fn = getattr(_import(target), attr, None)
    if fn is None or not callable(fn):
        raise InputError(f"--eval {text}: {target} has no function {attr!r} (it must take an "
                         "edgert.Session and return the accuracy)")
    return fn
