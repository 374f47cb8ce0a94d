"""The bounded fuzz run of ``make test`` (``make fuzz`` runs a larger one).

Seeded mutations of a model of every format and the crafted hostile files of
``tests.fuzz.crafted`` are loaded and run in worker processes that stand for the
user's program (``tests.fuzz.harness``). The caller must survive every file: no
crash, no hang, no exception that is not an ``EdgertError``, with the default
isolated check and with ``check="structure"`` plus ``run(timeout=)``. With
``check="structure"`` and no deadline, the only files allowed to hang the caller
are the crafted loops that never end (a valid model can loop forever; that is what
the deadline is for), and none may crash it.
"""
from __future__ import annotations

import os

import pytest

from tests.fuzz import crafted, harness

SEED = 0
PER_FORMAT = {"isolated": 6, "structure": 100}
# the crafted loops: valid models that never finish, not damage a structure check can see
ENDLESS = {"while_forever.tflite", "loop_forever.onnx"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("fuzz"))
    seeds = harness.seed_models(d)
    mutants = {check: harness.mutated_files(seeds, d, n, SEED + k)
               for k, (check, n) in enumerate(PER_FORMAT.items())}
    return mutants, crafted.build_runtime_cases(d)


def _report(capsys, res: harness.FuzzResult) -> None:
    with capsys.disabled():
        print(f"\nfuzz {res.summary()}")


def test_isolated_load_survives_every_file(corpus, capsys):
    mutants, cases = corpus
    paths = [p for p, _, _ in mutants["isolated"]] + list(cases.values())
    res = harness.run_files(paths, "isolated", per_file_s=40,
                            env={"EDGERT_PROBE_TIMEOUT": "3"})
    _report(capsys, res)
    assert res.failures() == {}
    for name, path in cases.items():
        assert res.outcomes[path] in crafted.expected(name), (name, res.outcomes[path])
    # the mutants are not all rejected out of hand: some load, some are damage
    outcomes = [res.outcomes[p] for p, _, _ in mutants["isolated"]]
    assert "ok" in outcomes and "ModelFileError" in outcomes


def test_structure_check_never_crashes_the_caller(corpus, capsys):
    """check="structure", load and run in the caller's process: the mutants the
    structural check must catch (or that are harmless) never crash or hang it."""
    mutants, _ = corpus
    res = harness.run_files([p for p, _, _ in mutants["structure"]], "structure", per_file_s=20)
    _report(capsys, res)
    assert res.failures() == {}
    outcomes = [res.outcomes[p] for p, _, _ in mutants["structure"]]
    assert outcomes.count("ok") >= 20 and outcomes.count("ModelFileError") >= 200


def test_crafted_files_with_the_structure_check_and_a_deadline(corpus, capsys):
    """The endless loops are valid models: with check="structure" only a deadline
    bounds them (``run(timeout=)``); every other crafted file is refused as with the
    isolated check."""
    _, cases = corpus
    res = harness.run_files(list(cases.values()), "structure", per_file_s=40, run_timeout=2.0)
    res.check = "structure+timeout"
    _report(capsys, res)
    assert res.failures() == {}
    for name, path in cases.items():
        want = ("RunTimeoutError",) if os.path.basename(path) in ENDLESS else \
            crafted.expected(name) + ("InputError",)
        assert res.outcomes[path] in want, (name, res.outcomes[path])
