"""Running ``edgert`` as a user does: in-process (fast) with the exit code and both streams."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def edgert(capsys, *argv: str) -> Tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``edgert ARGV`` run in this process."""
    from edgert.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:          # argparse's own exit (usage errors, --help)
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def edgert_process(*argv: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m edgert ARGV`` in a child (for what a process exit must show)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "edgert", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout)
