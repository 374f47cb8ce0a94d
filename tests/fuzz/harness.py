"""The fuzz harness: mutate model files of every format, load and run each in a
worker process the way a user would, and classify what happened to that process.

A worker is the *caller* under test: it calls ``edgert.load(path, check=...)`` and
one ``run`` on seeded random inputs, and reports the outcome of each file on a
status pipe. The harness watches it from outside:

- ``ok`` or the name of the ``EdgertError`` raised: the caller survived;
- ``leak:<Exception>``: a non-edgert exception escaped to the caller (a bug);
- ``crash:<SIGNAL>``: the caller died (the harness starts a new worker for the rest);
- ``hang``: the file took longer than the per-file deadline (the worker is killed).

Workers run under a memory limit, so a file that makes the caller allocate too
much shows as ``leak:MemoryError`` rather than as this machine's out-of-memory kill.

    python -m tests.fuzz.harness --per-format 200 --seed 0     # ``make fuzz``
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER_MEMORY = 2 << 30          # bytes: what a worker (the caller) may take
SURVIVED = ("ok", "ModelFileError", "EngineError", "InputError", "RunTimeoutError",
            "UnsupportedOptionError", "EngineUnavailableError")


# -- mutations ----------------------------------------------------------------------------

def _flip_bits(data: bytearray, rng, span: int) -> None:
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(0, span))] ^= 1 << int(rng.integers(0, 8))


def _overwrite_word(data: bytearray, rng, span: int) -> None:
    """A 4-byte little-endian word (offsets, lengths, indices in FlatBuffers) replaced
    by a value from the edges of the integer ranges."""
    at = int(rng.integers(0, max(1, span - 4))) & ~3
    value = int(rng.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000,
                            len(data), len(data) + 4, int(rng.integers(0, 1 << 32))]))
    data[at:at + 4] = value.to_bytes(4, "little")


def _overwrite_bytes(data: bytearray, rng, span: int) -> None:
    at = int(rng.integers(0, span))
    n = int(rng.integers(1, 17))
    fill = int(rng.choice([0x00, 0xFF, 0x7F, 0x80, int(rng.integers(0, 256))]))
    data[at:at + n] = bytes([fill]) * len(data[at:at + n])


def _move_chunk(data: bytearray, rng, span: int) -> bytearray:
    """Delete or duplicate a chunk: every offset after it now points elsewhere."""
    at = int(rng.integers(0, span))
    n = int(rng.integers(1, 65))
    if rng.random() < 0.5:
        return data[:at] + data[at + n:]
    return data[:at] + data[at:at + n] + data[at:]


MUTATORS = ("truncate", "flip_bits", "overwrite_word", "overwrite_bytes", "move_chunk")


def mutate(data: bytes, rng) -> Tuple[str, bytes]:
    """One seeded mutation of ``data``: (its kind, the mutated bytes)."""
    kind = MUTATORS[int(rng.integers(0, len(MUTATORS)))]
    b = bytearray(data)
    # half the mutations hit the header and tables (the first 4 KiB), half anywhere
    span = min(len(b), 4096) if rng.random() < 0.5 else len(b)
    if kind == "truncate":
        return kind, bytes(b[:int(rng.integers(1, len(b)))])
    if kind == "flip_bits":
        _flip_bits(b, rng, span)
    elif kind == "overwrite_word":
        _overwrite_word(b, rng, span)
    elif kind == "overwrite_bytes":
        _overwrite_bytes(b, rng, span)
    else:
        b = _move_chunk(b, rng, span)
    return kind, bytes(b)


def mutated_files(seeds: Dict[str, str], out_dir: str, per_format: int, seed: int
                  ) -> List[Tuple[str, str, str]]:
    """(path, format label, mutation kind) for ``per_format`` mutants of each seed file;
    duplicates (a mutation that changed nothing) are dropped."""
    rng = np.random.default_rng(seed)
    files, seen = [], set()
    for label, src in seeds.items():
        data = open(src, "rb").read()
        ext = os.path.splitext(src)[1]
        for k in range(per_format):
            kind, mutant = mutate(data, rng)
            if mutant == data or mutant in seen:
                continue
            seen.add(mutant)
            path = os.path.join(out_dir, f"{label}-{k:04d}-{kind}{ext}")
            with open(path, "wb") as f:
                f.write(mutant)
            files.append((path, label, kind))
    return files


def seed_models(out_dir: str) -> Dict[str, str]:
    """One small model per format and flavour, built in code (no converter needed)."""
    from tests.runtime import model_builders as mb

    rng = np.random.default_rng(42)
    paths = {"onnx": os.path.join(out_dir, "seed.onnx"), "mnn": os.path.join(out_dir, "seed.mnn"),
             "tflite": os.path.join(out_dir, "seed.tflite"),
             "tflite_int8": os.path.join(out_dir, "seed_int8.tflite")}
    mb.conv_classifier_onnx(paths["onnx"])
    mb.onnx_to_mnn(paths["onnx"], paths["mnn"])
    mb.fc_relu_tflite(paths["tflite"], rng.standard_normal((5, 12)).astype(np.float32),
                      rng.standard_normal(5).astype(np.float32))
    mb.fc_int8_tflite(paths["tflite_int8"], rng.integers(-127, 128, (4, 6)).astype(np.int8),
                      rng.integers(-200, 200, 4).astype(np.int32), (0.05, 3), 0.01, (0.2, -5))
    return paths


# -- the worker (the caller under test) -------------------------------------------------

def _worker(job_file: str, status_fd: int, check: str, run_timeout: float) -> int:
    import edgert
    from edgert.limits import limit_this_process

    limit_this_process(WORKER_MEMORY)
    jobs = json.load(open(job_file))
    status = os.fdopen(status_fd, "w", buffering=1)
    for k, path in jobs:
        status.write(f"BEGIN {k}\n")
        try:
            s = edgert.load(path, check=check)
            s.run(s.random_inputs(0), timeout=run_timeout or None)
            outcome = "ok"
        except edgert.EdgertError as exc:
            outcome = type(exc).__name__
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            outcome = f"leak:{type(exc).__name__}"
        status.write(f"END {k} {outcome}\n")
    return 0


# -- the harness --------------------------------------------------------------------------

@dataclass
class FuzzResult:
    check: str
    outcomes: Dict[str, str] = field(default_factory=dict)   # path -> outcome
    seconds: float = 0.0

    def counts(self) -> Dict[str, int]:
        return dict(collections.Counter(self.outcomes.values()).most_common())

    def failures(self) -> Dict[str, str]:
        """Files the caller did not survive cleanly (crash, hang, leaked exception)."""
        return {p: o for p, o in self.outcomes.items() if o not in SURVIVED}

    def summary(self) -> str:
        return (f"check={self.check}: {len(self.outcomes)} files in {self.seconds:.1f} s; "
                f"caller crashes {sum(o.startswith('crash') for o in self.outcomes.values())}, "
                f"hangs {sum(o == 'hang' for o in self.outcomes.values())}, "
                f"leaked exceptions {sum(o.startswith('leak') for o in self.outcomes.values())}; "
                f"outcomes {self.counts()}")


def run_files(paths: Sequence[str], check: str, per_file_s: float = 60.0,
              run_timeout: float = 0.0, env: Optional[dict] = None) -> FuzzResult:
    """Load + run every file in worker processes; classify each outcome."""
    result = FuzzResult(check)
    t0 = time.perf_counter()
    todo = list(enumerate(paths))
    with tempfile.TemporaryDirectory(prefix="edgert-fuzz-") as tmp:
        while todo:
            done = _one_worker(todo, check, per_file_s, run_timeout, env, tmp, result)
            todo = todo[done:]
    result.seconds = time.perf_counter() - t0
    return result


def _one_worker(todo, check, per_file_s, run_timeout, env, tmp, result) -> int:
    """Run jobs until the worker exits or dies; return how many jobs were settled."""
    job_file = os.path.join(tmp, "jobs.json")
    with open(job_file, "w") as f:
        json.dump(todo, f)
    r, w = os.pipe()
    code = ("import sys; from tests.fuzz.harness import _worker; "
            "sys.exit(_worker(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))")
    proc = subprocess.Popen([sys.executable, "-c", code, job_file, str(w), check,
                             str(run_timeout)], pass_fds=(w,), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {}), PYTHONPATH=ROOT))
    os.close(w)
    lines = _LineReader(r)
    settled, current = 0, None
    deadline = time.monotonic() + per_file_s + 30     # the first file pays the start-up
    try:
        while True:
            line = lines.next(deadline)
            if line is None:      # past the deadline
                proc.kill()
                proc.wait()
                if current is None:
                    raise RuntimeError("a fuzz worker stalled between files")
                result.outcomes[todo[current][1]] = "hang"
                return current + 1
            if not line:          # the worker exited or died
                code = proc.wait()
                if current is not None:
                    name = signal.Signals(-code).name if code < 0 else f"exit {code}"
                    result.outcomes[todo[current][1]] = f"crash:{name}"
                    return current + 1
                if settled == 0:
                    raise RuntimeError(f"a fuzz worker failed to start (exit {code})")
                return settled
            word, idx, *rest = line.split()
            assert todo[settled][0] == int(idx), (todo[settled], line)
            if word == "BEGIN":
                current, deadline = settled, time.monotonic() + per_file_s
            else:
                result.outcomes[todo[settled][1]] = rest[0]
                current, settled = None, settled + 1
    finally:
        lines.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class _LineReader:
    """Lines from a pipe with a deadline (a buffered file object would hide lines it
    has read ahead from ``select``)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, b""

    def next(self, deadline: float) -> Optional[str]:
        """The next line; "" at end of file; None past the deadline."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return ""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        os.close(self.fd)


# mode -> (check, run timeout in seconds or 0 for none)
MODES = {"isolated": ("isolated", 0.0), "structure": ("structure", 0.0),
         "structure+timeout": ("structure", 5.0)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="fuzz edgert.load with mutated model files")
    ap.add_argument("--per-format", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default=",".join(MODES),
                    help="isolated: the default load; structure: check='structure', run "
                         "in-process; structure+timeout: check='structure', run(timeout=5)")
    ap.add_argument("--keep", help="copy the files that failed into this folder")
    args = ap.parse_args(argv)
    from tests.fuzz import crafted

    bad = 0
    with tempfile.TemporaryDirectory(prefix="edgert-fuzz-") as d:
        env = {"EDGERT_CACHE_DIR": os.path.join(d, "cache"), "EDGERT_PROBE_TIMEOUT": "10"}
        files = mutated_files(seed_models(d), d, args.per_format, args.seed)
        cases = crafted.build_runtime_cases(d)
        paths = [p for p, _, _ in files] + list(cases.values())
        print(f"{len(files)} mutants ({args.per_format} per format, seed {args.seed}) "
              f"+ {len(cases)} crafted files")
        for mode in args.modes.split(","):
            check, run_timeout = MODES[mode]
            res = run_files(paths, check, per_file_s=30.0, run_timeout=run_timeout, env=env)
            res.check = mode
            print(res.summary())
            for path, outcome in sorted(res.failures().items()):
                print(f"  {outcome:24s} {os.path.basename(path)}")
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copy(path, os.path.join(args.keep, f"{mode}-{os.path.basename(path)}"))
            bad += len(res.failures())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
