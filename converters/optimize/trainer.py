"""What fine-tunes a channel-pruned candidate: the built-in loop, or the user's.

The built-in loop (``--train`` an .npz of inputs and labels, or arrays) is a short
recovery run, not a training from scratch, and three things make it recover more
per second than the constant-rate cross-entropy it replaces (figures in
docs/OPTIMIZE.md, ``bench/bench_finetune.py``):

* **Distillation from the source model** (Hinton et al.): the unpruned graph is the
  teacher. Its logits on the training set are computed once per search; each pruned
  candidate trains on ``(1 - distill) * CE(labels) + distill * T^2 * KL(teacher_T ||
  student_T)``. The soft targets carry what the teacher knows about every class, not
  only the right one, so a few hundred steps restore more of the teacher's function
  than the labels do, and the pruned net aims at the accuracy the user measured, not
  at the (possibly overfitted) labels.
* **A warm-up and cosine decay** of the learning rate: a higher peak moves the
  damaged layers quickly, the decay to zero settles them (a constant rate ends where
  the noise of its last steps leaves it).
* **A budget in optimizer steps**, not epochs: the time a pruning choice costs does
  not grow with the user's data set. It scales with how deep the pruning is (the
  share of the prunable channels removed): ``steps`` is the budget of a pruning that
  removes ``FULL_DEPTH`` of them or more, a shallower one gets its share, at least
  ``MIN_SHARE`` of it. The floor is measured: the digits stem alone at keep 0.5
  (depth 0.03) lost 0.7–1.3 pt after 75 steps and gained 0.7–1.1 pt after 150
  (every weight trains at the high peak rate, and a few steps do not settle them).
  ``epochs`` instead trains every pruning choice for that many passes over the data
  (the old behaviour, not scaled).

Block-sparse candidates (MNN) are fine-tuned after their blocks are zeroed, with the
zeros held (``masked``), so the sparsity is trained, not imposed on trained weights.

A user's callable ``train(module, ctx)`` runs its own loop; ``ctx`` holds ``steps``
(this pruning's budget), ``epochs`` (or None), ``depth``, ``input_names`` and
``teacher``: a function of the inputs (torch tensors, the graph's input order)
that returns the unpruned graph's logits, without gradients.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from edgert.errors import InputError

#: the default budget: optimizer steps of a pruning at FULL_DEPTH or deeper (digits:
#: uniform keep 0.5 recovers to within a point of fp32; docs/OPTIMIZE.md)
DEFAULT_STEPS = 300
#: share of the prunable channels removed that gets the whole budget
FULL_DEPTH = 0.5
#: the least share of the budget any pruning gets (75 steps did not settle a one-unit
#: pruning of the digits net, 150 did: docs/OPTIMIZE.md)
MIN_SHARE = 0.5


def _constant(step: int, total: int) -> float:
    return 1.0


def _cosine(step: int, total: int) -> float:
    """Linear warm-up over the first tenth from a tenth of the rate, then cosine decay
    towards zero, reached one step after the last (every step moves the weights)."""
    warm = max(1, total // 10)
    if step < warm:
        return 0.1 + 0.9 * step / warm
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


#: learning-rate schedule -> the rate's factor at optimizer step ``step`` of ``total``
SCHEDULES: Dict[str, Callable[[int, int], float]] = {"constant": _constant,
                                                      "cosine": _cosine}


@dataclass
class Recipe:
    """The built-in loop's settings (``steps`` or ``epochs``: not both)."""

    steps: Optional[int] = None          # None and no epochs: DEFAULT_STEPS
    epochs: Optional[int] = None
    lr: float = 4e-3
    batch: int = 32
    schedule: str = "cosine"
    distill: float = 0.7                 # weight of the teacher's term; 0: labels only
    temperature: float = 4.0
    seed: int = 0

    def check(self) -> None:
        if self.steps is not None and self.epochs is not None:
            raise InputError("give --train-steps or --train-epochs, not both")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--train-steps {self.steps}: must be at least 1")
        if self.epochs is not None and self.epochs < 1:
            raise InputError(f"--train-epochs {self.epochs}: must be at least 1")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        if not 0.0 <= self.distill <= 1.0 or self.temperature <= 0 or self.lr <= 0 or \
                self.batch < 1:
            raise InputError("fine-tuning: distill in [0, 1], temperature, lr and batch > 0")

    def steps_for(self, depth: float, samples: int) -> int:
        """Optimizer steps for a pruning that removes ``depth`` of the prunable channels."""
        if self.epochs is not None:
            return self.epochs * -(-samples // self.batch)
        full = DEFAULT_STEPS if self.steps is None else self.steps
        share = min(1.0, max(MIN_SHARE, depth / FULL_DEPTH))
        return max(1, int(math.ceil(full * share)))

    def describe(self) -> str:
        budget = (f"{self.epochs} epoch(s)" if self.epochs is not None else
                  f"{DEFAULT_STEPS if self.steps is None else self.steps} steps at depth "
                  f">= {FULL_DEPTH:g} (at least {MIN_SHARE:g} of them)")
        teach = (f", distilled (weight {self.distill:g}, T {self.temperature:g})"
                 if self.distill else "")
        return (f"{budget} of Adam, {self.schedule} lr {self.lr:g}, batch {self.batch}"
                f"{teach}")


class Trainer:
    """Fine-tunes a pruned graph in place: the built-in loop on labelled data
    (``Recipe``), or a user's callable ``train(module, ctx)``. ``teacher``: the
    unpruned graph (an ONNX path or ``ModelProto``), the distillation's teacher."""

    def __init__(self, spec: Any, input_names: List[str], recipe: Optional[Recipe] = None,
                 teacher: Any = None) -> None:
        self.recipe = recipe or Recipe()
        self.recipe.check()
        self.input_names = list(input_names)
        self.teacher_source = teacher
        self.fn: Optional[Callable] = None
        self.x: Optional[np.ndarray] = None
        self.y: Optional[np.ndarray] = None
        self._teacher: Any = None
        self._soft: Optional[np.ndarray] = None
        self._lock = threading.Lock()
        if callable(spec) and not isinstance(spec, (str, os.PathLike)):
            self.fn, self.description = spec, getattr(spec, "__name__", "a callable")
        elif isinstance(spec, (str, os.PathLike)) and not os.path.exists(spec) and \
                ":" in os.fspath(spec):
            from converters.optimize.evaluate import _load_callable

            self.fn, self.description = _load_callable(os.fspath(spec)), os.fspath(spec)
        else:
            self._load_arrays(spec)

    def _load_arrays(self, spec: Any) -> None:
        from converters.optimize.evaluate import _npz

        if isinstance(spec, dict):
            inputs, labels = dict(spec), None
            labels = next((inputs.pop(k) for k in ("labels", "y") if k in inputs), None)
            inputs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
            self.description = "training arrays"
        else:
            inputs, labels = _npz(os.fspath(spec), self.input_names)
            self.description = os.fspath(spec)
        if labels is None or len(inputs) != 1:
            raise InputError(f"--train {self.description}: one input array and 'labels' "
                             "(or give file.py:function for anything else)")
        self.x = next(iter(inputs.values())).astype(np.float32)
        self.y = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(self.x) != len(self.y):
            raise InputError(f"--train {self.description}: {len(self.y)} labels for "
                             f"{len(self.x)} inputs")

    def describe(self) -> str:
        if self.fn is not None:
            return self.description
        r = self.recipe
        if self.teacher_source is None and r.distill:
            r = Recipe(**{**vars(r), "distill": 0.0})
        return f"{self.description}, {r.describe()}"

    def steps_for(self, depth: float) -> int:
        return self.recipe.steps_for(depth, 0 if self.x is None else len(self.x))

    def __call__(self, proto, depth: float = 1.0, masked: bool = False) -> None:
        """Fine-tune ``proto`` in place; ``depth``: the share of the prunable channels
        its pruning removed (sets the step budget); ``masked``: every weight that is
        zero stays zero (block sparsity: after each step of the built-in loop, and
        after a user's loop)."""
        import torch

        from converters.optimize.finetune import onnx_module

        module = onnx_module(proto)
        masks = [(p, p.detach() != 0) for p in module.parameters() if p.dim() >= 2] \
            if masked else []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)     # small graphs train faster on one thread (digits: 6x)
        try:
            module.train()
            if self.fn is not None:
                self.fn(module, {"steps": self.steps_for(depth), "epochs": self.recipe.epochs,
                                 "depth": depth, "input_names": self.input_names,
                                 "teacher": self.teacher})
            else:
                self._loop(module, self.steps_for(depth), masks)
            _hold_zeros(masks)
        finally:
            torch.set_num_threads(threads)
        module.write_back(proto)

    def teacher(self, *xs):
        """The unpruned graph's outputs for ``xs`` (torch tensors), without gradients."""
        import torch

        if self.teacher_source is None:
            raise InputError("fine-tuning: no teacher (the unpruned graph) was given")
        with self._lock:
            if self._teacher is None:
                import onnx

                from converters.optimize.finetune import onnx_module

                src = self.teacher_source
                proto = onnx.load(os.fspath(src)) if isinstance(src, (str, os.PathLike)) \
                    else src
                self._teacher = onnx_module(proto).eval()
        with torch.no_grad():
            return self._teacher(*xs)

    def soft_targets(self) -> Optional[np.ndarray]:
        """The teacher's logits on the training inputs, computed once (None: no
        distillation)."""
        import torch

        if not self.recipe.distill or self.teacher_source is None or self.x is None:
            return None
        if self._soft is None:
            x = torch.from_numpy(self.x)
            self._soft = np.concatenate([
                self.teacher(x[i:i + 128]).reshape(len(x[i:i + 128]), -1).numpy()
                for i in range(0, len(x), 128)])
        return self._soft

    def _loop(self, module, steps: int, masks: Sequence[Any] = ()) -> None:
        import torch
        import torch.nn.functional as F

        r = self.recipe
        g = torch.Generator().manual_seed(r.seed)
        opt = torch.optim.Adam(module.parameters(), lr=r.lr)
        factor = SCHEDULES[r.schedule]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: factor(k, steps))
        soft = self.soft_targets()
        x, y = torch.from_numpy(self.x), torch.from_numpy(self.y)
        t = None if soft is None else torch.from_numpy(soft)
        order = torch.randperm(len(x), generator=g)
        pos = 0
        for _ in range(steps):
            if pos >= len(x):
                order, pos = torch.randperm(len(x), generator=g), 0
            idx = order[pos:pos + r.batch]
            pos += r.batch
            out = module(x[idx]).reshape(len(idx), -1)
            loss = F.cross_entropy(out, y[idx])
            if t is not None:
                kl = F.kl_div(F.log_softmax(out / r.temperature, dim=1),
                              F.log_softmax(t[idx] / r.temperature, dim=1),
                              reduction="batchmean", log_target=True)
                loss = (1.0 - r.distill) * loss + r.distill * r.temperature ** 2 * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            _hold_zeros(masks)
            sched.step()


def _hold_zeros(masks: Sequence[Any]) -> None:
    import torch

    with torch.no_grad():
        for p, keep in masks:
            p.mul_(keep)
