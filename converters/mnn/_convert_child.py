"""Child process around MNN's converter (run as a script, imports only MNN).

MNN's converter is C++ that can crash on graphs it does not expect (it
segfaults on an ONNX LSTM with only its first output), and it prints to the C
stdout. Running it here keeps a crash from taking the caller down and lets the
parent read everything MNN printed from the pipe. After a successful
conversion the child loads the result once with MNN and prints its op counts.

Usage: python _convert_child.py '{"args": [...], "out": "m.mnn", "count_ops": true}'
(or ``run(job)`` in a child forked from a warm process: ``converters.flow.launch.call``).
The last stdout line starting with EDGERT_RESULT carries a JSON result.
Never import MNN.tools here: its __init__ imports the mnnconvert wrapper,
which pip-installs a logging SDK at import time.
"""
import json
import os
import sys


def count_ops(path: str) -> dict:
    """Op type -> count of an MNN file as MNN's expression loader sees it (also called by
    the verification child, which has MNN loaded anyway: ``converters.flow.isolation``)."""
    import MNN

    counts: dict = {}
    for var in MNN.expr.load_as_list(path):
        try:
            op = var.op_type
        except Exception:  # inputs and constants have no op
            continue
        if op:
            counts[op] = counts.get(op, 0) + 1
    return dict(sorted(counts.items()))


def main() -> int:
    return run(json.loads(sys.argv[1]))


def run(job: dict) -> int:
    """Convert as ``job`` says, print the result line; the exit code. Also called in a
    child forked from verification's warm zygote (``converters.flow.launch.call``)."""
    import _tools  # the C binding of MNN's converter, from the MNN wheel

    ok = _tools.mnnconvert(job["args"])
    sys.stdout.flush()
    result = {"returned": bool(ok), "exists": os.path.exists(job["out"]), "op_counts": {}}
    # counting imports MNN and parses the file (0.25 s + 0.3 s for ResNet-18): skipped
    # when verification will run the file and count there
    if result["exists"] and job.get("count_ops"):
        try:
            result["op_counts"] = count_ops(job["out"])
        except Exception as exc:  # counts are a nicety; the file is what matters
            result["op_count_error"] = str(exc)
    sys.stdout.flush()
    print("EDGERT_RESULT " + json.dumps(result), flush=True)
    return 0 if ok and result["exists"] else 1


if __name__ == "__main__":
    sys.exit(main())
