"""Finding the frames of a results file on disk, for reports built after the run.

A results file names each frame by the path the user gave ``detect`` (relative to where it ran,
or absolute). :class:`FrameFinder` turns such a name into a file:

* with ``--images`` (files, folders searched with their subfolders, glob patterns): the listed
  file whose path shares the longest run of trailing components with the name (at least the
  file name); a tie between several files is refused as ambiguous;
* without: the name as a path (from the current folder), else relative to the results file's
  folder.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Optional, Sequence, Union

from sspnet_cli.errors import InputError
from sspnet_cli.imagery.inputs import expand_inputs
from sspnet_cli.imagery.sources import ImageSource, open_source
from sspnet_cli.geo.transform import check_source_georef
from sspnet_cli.types import ImageResult


def _parts(name: str, windows: bool = False) -> tuple[str, ...]:
    """The path components of ``name``: split at ``/`` (a backslash is a legal file-name
    character on Linux and macOS), or with ``windows`` at ``\\`` too."""
    text = name.replace("\\", "/") if windows else name
    return tuple(p for p in PurePosixPath(text).parts if p not in ("/", "."))


class FrameFinder:
    """Locates and opens the frames of results read back from a file."""

    def __init__(self, results_file: Union[str, Path], images: Optional[Sequence[str]] = None, bands: Optional[Sequence[int]] = None) -> None:
        self.base = Path(results_file).absolute().parent
        self.bands = tuple(bands) if bands else None
        self.problems: list[tuple[str, str]] = []  # (what the user typed, why it gave nothing)
        self.listed: Optional[dict[str, list[Path]]] = None
        if images:
            expanded = expand_inputs(images, recursive=True)
            self.problems = expanded.problems
            self.listed = {}
            for path in expanded.paths:
                self.listed.setdefault(path.name, []).append(path)

    def find(self, name: str) -> Path:
        """The file of frame ``name``; raises :class:`InputError` saying why there is none."""
        if self.listed is None:
            for candidate in (Path(name), self.base / name):
                if candidate.is_file():
                    return candidate
            raise InputError(name, f"image not found (looked in the current folder and in {self.base}; give --images)")
        wanted = _parts(name)
        if "\\" in name and wanted and wanted[-1] not in self.listed:
            wanted = _parts(name, windows=True)  # a path written on Windows
        if not wanted:
            raise InputError(name, "image has no file name")
        best: list[Path] = []
        best_len = 0
        for path in self.listed.get(wanted[-1], []):
            have = _parts(path.absolute().as_posix())
            common = 0
            while common < min(len(have), len(wanted)) and have[-1 - common] == wanted[-1 - common]:
                common += 1
            if common > best_len:
                best, best_len = [path], common
            elif common == best_len:
                best.append(path)
        if not best:
            raise InputError(name, "image not found among --images")
        if len(best) > 1:
            raise InputError(name, f"image is ambiguous: {len(best)} files under --images match it ({best[0]}, {best[1]}, ...)")
        return best[0]

    def open(self, result: ImageResult) -> ImageSource:
        """Open the frame of ``result`` (an :data:`~sspnet_cli.outputs.report.builder.ImageOpener`)."""
        return check_source_georef(open_source(self.find(result.image), bands=self.bands))
