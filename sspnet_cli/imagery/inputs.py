"""Turning what the user typed (files, folders, glob patterns) into a list of image paths."""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

# suffixes picked up when listing a folder; files named explicitly are tried whatever their suffix
IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".jp2", ".vrt", ".img", ".gtif",
}


@dataclass
class ExpandedInputs:
    paths: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what the user typed, why)


def expand_inputs(items: Sequence[str], recursive: bool = False) -> ExpandedInputs:
    """Image paths in the order given: a file as is, a folder's images sorted by name (its
    subfolders too with ``recursive``), a glob pattern's matches sorted. Duplicates are dropped;
    anything that names nothing is reported, not fatal."""
    out = ExpandedInputs()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.paths.append(path)

    for item in items:
        path = Path(item).expanduser()
        if path.is_file():
            add(path)
        elif path.is_dir():
            listing = path.rglob("*") if recursive else path.glob("*")
            found = sorted(p for p in listing if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                out.problems.append((item, "folder holds no images" + ("" if recursive else " (add --recursive for subfolders)")))
            for p in found:
                add(p)
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=recursive) if Path(m).is_file())
            if not matches:
                out.problems.append((item, "pattern matches no files"))
            for p in matches:
                add(p)
        else:
            out.problems.append((item, "no such file or folder"))
    return out
