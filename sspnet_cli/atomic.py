"""Atomic file writes, and the up-front check that an output can be written at all.

An output is written to a temporary file in its own folder, flushed and fsynced, then renamed over
the target with :func:`os.replace`: readers see the old file or the new one, never half of one.
If anything raises before the end, the temporary file is removed and the old output (if any) is
left untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Union

from sspnet_cli.errors import SSPNetError

#: result formats :func:`sspnet_cli.outputs.writers.write_results` knows, by suffix
RESULT_SUFFIXES = (".geojson", ".csv", ".json", ".gpx", ".kml")
#: formats of drawn overlay images
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _default_mode() -> int:
    # mkstemp creates 0600 files; a new output should get the usual 0666 & ~umask instead
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _default_mode()


@contextlib.contextmanager
def atomic_write(path: Union[str, Path], mode: str = "w", encoding: Optional[str] = "utf-8", newline: Optional[str] = None) -> Iterator[IO]:
    """Open ``path`` for writing (``mode`` "w" text or "wb" binary) so that it appears whole or
    not at all. Text mode defaults to UTF-8; ``newline`` is passed to :func:`open`."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            keep = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            keep = _NEW_FILE_MODE
        os.chmod(tmp_name, keep)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def missing_folder(path: Union[str, Path]) -> Optional[Path]:
    """The folder of ``path`` when it does not exist yet (writing ``path`` will create it)."""
    folder = Path(path).parent
    return None if folder.is_dir() else folder


def check_folder(folder: Union[str, Path]) -> Path:
    """Check, without creating it, that ``folder`` is a folder that accepts new files, or can be
    made one (its nearest existing ancestor is a writable folder); one-line :class:`SSPNetError`."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SSPNetError(f"{folder}: exists and is not a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SSPNetError(f"cannot create the folder {folder} (a file has the name {existing})")
    try:
        fd, probe = tempfile.mkstemp(prefix=".sspnet.", suffix=".probe", dir=existing)
    except OSError as exc:
        raise SSPNetError(f"cannot write into {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return folder


def check_writable(path: Union[str, Path], suffixes: Iterable[str] = RESULT_SUFFIXES) -> Path:
    """Check, before any work starts and without creating anything, that ``path`` can be
    written: its suffix is one of ``suffixes`` (case-insensitive), it is not a folder, and its
    folder accepts new files (or, where it does not exist yet, the nearest folder above it that
    does, so that writing can create it). Returns the path; raises :class:`SSPNetError` with
    one line."""
    target = Path(path)
    suffixes = tuple(s.lower() for s in suffixes)
    if target.suffix.lower() not in suffixes:
        known = ", ".join(suffixes)
        got = f"{target.suffix!r}" if target.suffix else "no suffix"
        raise SSPNetError(f"{target}: unknown output format ({got}); use one of {known}")
    if target.is_dir():
        raise SSPNetError(f"{target}: is a folder; give a file name")
    folder = target.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SSPNetError(f"{target}: cannot create the folder {folder} (a file has the name {existing})")
    # os.access is unreliable (ACLs, read-only mounts, root): really create and remove a file
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=existing)
    except OSError as exc:
        what = "is not writable" if existing == folder else f"cannot be created ({existing} is not writable)"
        raise SSPNetError(f"{target}: the folder {folder} {what} ({exc.strerror or exc})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return target
