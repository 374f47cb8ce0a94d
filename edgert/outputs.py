"""Output files written whole or not at all, and never over a user's file unasked.

    folder = OutputFolder("out", overwrite=False)   # --out checked: a folder, writable
    folder.refuse_existing(["m.mnn", "m.report.json"])   # before any work
    with folder.writing("m.mnn") as tmp:            # tmp: out/.edgert-partial-<pid>/m.mnn
        write_the_model(tmp)                        # (and any file written beside it)
    folder.close()                                  # the staging folder is removed

A writer writes into a staging folder inside the output folder (the same file
system, so the final ``os.replace`` is atomic), under the final names, so a writer
that puts a file beside its output (MNN's ``.compression.json``, ONNX's external
``.data``) needs no change. When the writer returns, everything staged is moved
into place; when it raises (or the process is killed), the output folder holds
the files of before and, at worst, a ``.edgert-partial-*`` folder.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

from edgert.errors import InputError

PathLike = Union[str, "os.PathLike[str]"]


class OutputExistsError(InputError):
    """Outputs would replace files that exist, and overwriting was not asked for."""


def check_out_dir(out_dir: PathLike) -> Path:
    """``out_dir``, made if missing, or an InputError saying why it cannot hold outputs
    (a file, a parent that is a file, no permission, a read-only file system)."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise InputError(f"output folder {path} is a file, not a folder: choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"cannot make the output folder {path}: a part of its path is a "
                         f"file") from None
    except OSError as exc:
        raise InputError(f"cannot make the output folder {path}: "
                         f"{exc.strerror or exc}") from None
    try:                                   # os.access says yes to root on a read-only mount
        fd, probe = tempfile.mkstemp(prefix=".edgert-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"output folder {path} is not writable: "
                         f"{exc.strerror or exc}") from None
    return path


def existing(out_dir: PathLike, names: Iterable[str]) -> List[str]:
    """The names among ``names`` that already exist in ``out_dir``, in order, once."""
    seen: List[str] = []
    for name in names:
        if name not in seen and os.path.lexists(os.path.join(out_dir, name)):
            seen.append(name)
    return seen


def refusal(out_dir: PathLike, names: List[str]) -> OutputExistsError:
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return OutputExistsError(
        f"{out_dir} already holds {len(names)} of the files this would write: {shown}; "
        f"pass overwrite=True to replace them, or choose another output folder or name")


class OutputFolder:
    """An output folder whose files are staged and moved into place when complete."""

    def __init__(self, out_dir: PathLike, overwrite: bool = False) -> None:
        self.path = check_out_dir(out_dir)
        self.overwrite = overwrite
        self._staging: Optional[Path] = None

    def refuse_existing(self, names: Iterable[str]) -> None:
        """OutputExistsError listing the ``names`` that exist (unless overwriting)."""
        found = existing(self.path, names)
        if found and not self.overwrite:
            raise refusal(self.path, found)

    def final(self, name: str) -> Path:
        return self.path / name

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """The staged path to write ``name`` at; moved into place when the block ends
        without an exception (with whatever else was written beside it)."""
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix=f".edgert-partial-{os.getpid()}-",
                                                  dir=self.path))
        staged = self._staging / name
        try:
            yield staged
        except BaseException:
            self._clear_staging()
            raise
        self._publish()

    def discard(self) -> None:
        """Inside ``writing``: drop what was staged (a writer that reported a failure
        instead of raising); nothing is moved into place."""
        self._clear_staging()

    def _publish(self) -> None:
        staging = self._staging
        if staging is None:
            return
        names = sorted(os.listdir(staging))
        clash = [] if self.overwrite else existing(self.path, names)
        if clash:                           # a file appeared since the check, or a sidecar
            self._clear_staging()
            raise refusal(self.path, clash)
        for name in names:
            os.replace(staging / name, self.path / name)

    def _clear_staging(self) -> None:
        if self._staging is not None:
            for name in os.listdir(self._staging):
                p = self._staging / name
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    def close(self) -> None:
        """Remove the staging folder (and anything a failed writer left in it)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_text(folder: OutputFolder, name: str, text: str) -> Path:
    """``text`` into ``folder/name``, whole or not at all."""
    with folder.writing(name) as tmp:
        tmp.write_text(text)
    return folder.final(name)


def check_output_file(path: PathLike, overwrite: bool = False) -> Path:
    """``path`` as a file this may write: its folder can hold it (made if missing), it is
    not a folder, and it does not exist unless ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a folder: give a file name")
    check_out_dir(path.parent if str(path.parent) else ".")
    if path.exists() and not overwrite:
        raise refusal(path.parent, [path.name])
    return path
