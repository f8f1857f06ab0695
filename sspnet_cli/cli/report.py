"""``sspnet report``: a review report for searchers from an existing ``detect`` output."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sspnet_cli.cli.app import app, err
from sspnet_cli.cli.options import in_range, parse_bands
from sspnet_cli.errors import SSPNetError
from sspnet_cli.outputs.report import DEFAULT_REPORT_MAX, DEFAULT_REPORT_THR, check_report_dir, write_report
from sspnet_cli.outputs.report.locate import FrameFinder
from sspnet_cli.geo.camera import apply_camera_models
from sspnet_cli.inference.jobs import partial_results, parts_dir_for
from sspnet_cli.outputs.results_io import ReadResults, read_results

THR_HELP = "List detections scoring at least this, best first (the results hold nothing below detect's --score-thr)."
MAX_HELP = "List at most this many detections; the page says how many more were left out."


def check_report_options(report_thr: float, report_max: int) -> None:
    """Refuse a threshold outside [0, 1] or a negative limit (one line, exit 2)."""
    if not 0.0 <= report_thr <= 1.0:
        raise SSPNetError(f"--report-thr must be between 0 and 1, got {report_thr}")
    if report_max < 0:
        raise SSPNetError(f"--report-max must not be negative, got {report_max}")


@app.command()
def report(
    results: Path = typer.Argument(..., help="An output of sspnet detect: .json (COCO-style), .geojson or .csv. Where RESULTS.parts/ exists (a run still going, interrupted, or kept with --keep-parts) it is read too: for an unfinished run, the images done so far; for a --heatmaps run, the attention maps. A RESULTS.parts folder itself works as well."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the report (index.html and its pictures); created, or an earlier report in it replaced. Opens from disk, offline."),
    images: Optional[list[str]] = typer.Option(None, "--images", "-i", help="Where the frames are now: files, folders (subfolders searched) or glob patterns; repeat for more. Frames are matched by the longest common path ending. [default: the paths in RESULTS, from here or from RESULTS' folder]"),
    report_thr: float = typer.Option(DEFAULT_REPORT_THR, "--report-thr", callback=in_range(0.0, 1.0), help=THR_HELP),
    report_max: int = typer.Option(DEFAULT_REPORT_MAX, "--report-max", callback=in_range(1, None), help=MAX_HELP),
    bands: Optional[str] = typer.Option(None, help="Raster bands (1-based) shown as R,G,B, e.g. '4,3,2'. [default: the run's, as recorded in RESULTS, else the first three]"),
) -> int:
    """Write a self-contained review report (HTML, crops, overview map) for a detect output.

    Exit codes: 0 all done; 1 some frames could not be found or read (their detections are
    listed without pictures); 2 usage error or nothing could be done.
    """
    check_report_options(report_thr, report_max)
    check_report_dir(out)
    loaded, heatmaps = _load(results)
    for warning in loaded.warnings:
        err.print(f"warning: {warning}", markup=False)
    meta = dict(loaded.meta, results=str(results))
    options = meta.get("options") if isinstance(meta.get("options"), dict) else {}
    chosen = parse_bands(bands) or options.get("bands") or None
    finder = FrameFinder(results, images, chosen)
    for item, problem in finder.problems:
        err.print(f"skipped {item}: {problem}", markup=False)
    notes = []
    if Path(results).suffix.lower() in (".geojson", ".csv") and not loaded.from_parts:
        notes.append(f"{Path(results).name} lists only frames with detections: frames without any are not counted here.")
    notes += loaded.warnings
    summary = write_report(
        out, loaded.results, meta, report_thr, report_max, heatmaps=heatmaps, notes=notes, open_image=finder.open,
        failures=loaded.failures,
    )
    for warning in summary.warnings:
        err.print(f"warning: {warning}", markup=False)
    left = f" ({summary.left_out} more left out by --report-max)" if summary.left_out else ""
    err.print(f"wrote {summary.index}: {summary.images} image(s), {summary.listed} detection(s) to review{left}", markup=False)
    return 1 if summary.warnings or finder.problems else 0


def _load(results: Path) -> tuple[ReadResults, bool]:
    """The results to report on, and whether they carry attention maps to draw.

    A ``.parts`` folder, or a results file that does not exist (yet) beside its ``.parts``
    folder, gives the images the run has finished; a results file with a ``.parts`` folder
    beside it gives the file's results with the attention maps found in the parts."""
    parts = results if results.suffix == ".parts" and results.is_dir() else parts_dir_for(results)
    if results == parts or (not results.exists() and parts.is_dir()):
        partial = partial_results(parts)
        loaded = ReadResults(apply_camera_models(partial.results), partial.meta)
        loaded.from_parts = True
        loaded.failures = [(f.image, f.problem) for f in partial.failures]
        done = f"{len(partial.results) + len(partial.failures)} image(s) finished"
        loaded.warnings.append(f"read from {parts.name}/ of a run that has not written its results: {done}, {partial.unfinished} partly done (left out)")
        return loaded, _has_attention(loaded.results)
    loaded = read_results(results)
    if parts.is_dir():
        try:
            maps = {r.image: r.attention for r in partial_results(parts).results if r.attention}
        except SSPNetError:
            maps = {}
        for result in loaded.results:
            if result.image in maps:
                result.attention = maps[result.image]
    return loaded, _has_attention(loaded.results)


def _has_attention(results: list) -> bool:
    return any(r.attention for r in results)
