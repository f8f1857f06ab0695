"""``report``: the review report (HTML, crops, overview map) of an existing detect output."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.camera import MAX_OFF_NADIR, apply_camera_models
from sspnet_cli.inference.jobs import partial_results, parts_dir_for
from sspnet_cli.outputs.report import DEFAULT_REPORT_MAX, DEFAULT_REPORT_THR, ReportSummary, check_report_dir, write_report
from sspnet_cli.outputs.report.locate import FrameFinder
from sspnet_cli.outputs.results_io import ReadResults, read_results

PathLike = Union[str, Path]


@dataclass
class ReportOutcome:
    """What :func:`report` did: the report written, the results it read (with what reading them
    said), and the frames it could not find (``missing``: (image, why))."""

    summary: ReportSummary
    loaded: ReadResults
    missing: list[tuple[str, str]] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return list(self.loaded.warnings) + list(self.summary.warnings)

    @property
    def exit_code(self) -> int:
        """0 all done; 1 some frames could not be found or read (listed without pictures)."""
        return 1 if self.summary.warnings or self.missing else 0


def report(
    results: PathLike,
    out: PathLike,
    *,
    images: Optional[Sequence[str]] = None,
    report_thr: float = DEFAULT_REPORT_THR,
    report_max: int = DEFAULT_REPORT_MAX,
    bands: Optional[Sequence[int]] = None,
) -> ReportOutcome:
    """Write a review report of a detect output (``.json``, ``.geojson``, ``.csv``, or a
    ``.parts`` folder) into the folder ``out``: what ``sspnet report`` does. Frames are found by
    their paths in ``results`` or under ``images``; where ``RESULTS.parts/`` exists it is read
    too (the images an unfinished run has done, or the attention maps of a ``--heatmaps`` run)."""
    if not 0.0 <= report_thr <= 1.0:
        raise SSPNetError(f"report_thr must be between 0 and 1, got {report_thr}")
    if report_max < 1:
        raise SSPNetError(f"report_max must be at least 1, got {report_max}")
    results = Path(results)
    check_report_dir(out)
    loaded, heatmaps = load_for_report(results)
    meta = dict(loaded.meta, results=str(results))
    options = meta.get("options") if isinstance(meta.get("options"), dict) else {}
    chosen = tuple(bands) if bands else (options.get("bands") or None)
    finder = FrameFinder(results, images, chosen)
    notes = []
    if results.suffix.lower() in (".geojson", ".csv") and not loaded.from_parts:
        notes.append(f"{results.name} lists only frames with detections: frames without any are not counted here.")
    notes += loaded.warnings
    summary = write_report(
        out, loaded.results, meta, report_thr, report_max, heatmaps=heatmaps, notes=notes, open_image=finder.open,
        failures=loaded.failures,
    )
    return ReportOutcome(summary, loaded, list(finder.problems))


def load_for_report(results: Path) -> tuple[ReadResults, bool]:
    """The results to report on, and whether they carry attention maps to draw.

    A ``.parts`` folder, or a results file that does not exist (yet) beside its ``.parts``
    folder, gives the images the run has finished, placed on the ground with the run's own
    camera settings; a results file with a ``.parts`` folder beside it gives the file's results
    with the attention maps found in the parts."""
    parts = results if results.suffix == ".parts" and results.is_dir() else parts_dir_for(results)
    if results == parts or (not results.exists() and parts.is_dir()):
        partial = partial_results(parts)
        camera = partial.meta.get("camera") or {}
        placed = partial.results
        if camera.get("camera_model", True):
            placed = apply_camera_models(
                placed, camera.get("ground_elevation"), camera.get("dem"), float(camera.get("max_off_nadir", MAX_OFF_NADIR))
            )
        loaded = ReadResults(placed, partial.meta)
        loaded.from_parts = True
        loaded.failures = [(f.image, f.problem) for f in partial.failures]
        done = f"{len(partial.results) + len(partial.failures)} image(s) finished"
        loaded.warnings.append(f"read from {parts.name}/ of a run that has not written its results: {done}, {partial.unfinished} partly done (left out)")
        return loaded, any(r.attention for r in loaded.results)
    loaded = read_results(results)
    if parts.is_dir():
        try:
            maps = {r.image: r.attention for r in partial_results(parts).results if r.attention}
        except SSPNetError:
            maps = {}
        for result in loaded.results:
            if result.image in maps:
                result.attention = maps[result.image]
    return loaded, any(r.attention for r in loaded.results)
