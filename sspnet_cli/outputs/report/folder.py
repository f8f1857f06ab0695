"""The report folder: checked before any work starts, built beside it, swapped in whole.

A report is built in a hidden temporary folder next to the target and renamed into place at the
end, so an interrupted run leaves the previous report (if any) as it was, never half of one. The
target must be absent, empty, or an earlier sspnet report (recognised by its :data:`MARKER`
file): any other non-empty folder is refused rather than overwritten.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

from sspnet_cli.errors import SSPNetError

MARKER = ".sspnet-report"


def _folder_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def check_report_dir(path: Union[str, Path]) -> Path:
    """Check that a report can be written at ``path`` (see the module docstring) and that its
    parent folder accepts new entries; raises :class:`SSPNetError` with one line."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise SSPNetError(f"{target}: exists and is not a folder; give a folder for the report")
    if target.is_dir():
        try:
            names = os.listdir(target)
        except OSError as exc:
            raise SSPNetError(f"{target}: cannot list the folder ({exc.strerror or exc})") from None
        if names and MARKER not in names:
            raise SSPNetError(f"{target}: folder is not empty and holds no sspnet report; give a new or empty folder")
    full = Path(os.path.abspath(target))
    if full.parent == full:
        raise SSPNetError(f"{target}: cannot put a report at the root of a file system")
    parent = full.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SSPNetError(f"{target}: cannot create the folder {parent} ({exc.strerror or exc})") from None
    try:
        probe = tempfile.mkdtemp(prefix=f".{full.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise SSPNetError(f"{target}: the folder {parent} is not writable ({exc.strerror or exc})") from None
    os.rmdir(probe)
    return target


@contextlib.contextmanager
def building(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a fresh temporary folder to build the report in; when the block ends normally it
    replaces ``path`` (the older report is removed), otherwise it is removed."""
    check_report_dir(path)
    target = Path(os.path.abspath(path))
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".building", dir=target.parent))
    try:
        os.chmod(work, _folder_mode())
        (work / MARKER).write_text("This folder is an sspnet review report; sspnet may replace it whole.\n", encoding="utf-8")
        yield work
        _swap_in(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _swap_in(work: Path, target: Path) -> None:
    if not target.exists():
        os.rename(work, target)
        return
    check_report_dir(target)  # it may have changed while the report was being built
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=work.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(work, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
