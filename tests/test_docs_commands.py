"""The docs' commands run: every `edgert ...` line in a fenced block of README.md and
docs/*.md parses with the CLI's own parser (a renamed or removed flag fails here, not
in a user's terminal), every `make TARGET` names a Makefile target and every
`python -m MODULE` an importable module. Parsing only: the commands' work (devices,
files) is what the rest of the suite runs."""
from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands() -> Iterator[Tuple[str, List[str]]]:
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if "\u2500" in line:         # a diagram, not a command
                    continue
                if "[--" in line or "(--" in line:   # a synopsis: [optional] (a | b)
                    continue
                if line.startswith("$ "):
                    line = line[2:]
                for part in re.split(r"\s(?:&&|\|\||;)\s", line):
                    try:
                        words = shlex.split(part, comments=True)
                    except ValueError:
                        continue
                    for i, w in enumerate(words):      # the shell's redirections
                        if w in (">", ">>", "<", "|", "2>", "2>&1"):
                            words = words[:i]
                            break
                    if len(words) > 1 and words[1].endswith(":"):
                        continue                      # printed output ("edgert farm: error")
                    if words and words[0] in ("edgert", "make") or words[:2] == ["python", "-m"]:
                        yield f"{doc.name}: {part.strip()}", words


CASES = list(_commands())


def test_the_docs_hold_commands():
    assert sum(1 for _, w in CASES if w[0] == "edgert") > 40


@pytest.mark.parametrize("where,words", CASES, ids=[w for w, _ in CASES])
def test_documented_command_parses(where, words, capsys):
    if words[0] == "make":
        targets = set(re.findall(r"(?m)^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text()))
        assert all(t in targets or "=" in t for t in words[1:]), where
    elif words[0] == "python":
        module = words[2]
        assert importlib.util.find_spec(module) is not None, where
    else:
        from edgert.cli import build_parser

        try:
            build_parser().parse_args(words[1:])
        except SystemExit as exc:
            if exc.code not in (0, None):       # --help / --version exit 0
                pytest.fail(f"{where}\n{capsys.readouterr().err}")
