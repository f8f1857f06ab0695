"""``sspnet report``: a review report for searchers from an existing ``detect`` output."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sspnet_cli.cli.console import say
from sspnet_cli.cli.detect import MAX_HELP, THR_HELP
from sspnet_cli.cli.options import in_range, parse_bands
from sspnet_cli.config import REPORT_MAX, REPORT_THR


def report(
    results: Path = typer.Argument(..., help="An output of sspnet detect: .json (COCO-style), .geojson or .csv. Where RESULTS.parts/ exists (a run still going, interrupted, or kept with --keep-parts) it is read too: for an unfinished run, the images done so far; for a --heatmaps run, the attention maps. A RESULTS.parts folder itself works as well."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the report (index.html and its pictures); created, or an earlier report in it replaced. Opens from disk, offline."),
    images: Optional[list[str]] = typer.Option(None, "--images", "-i", help="Where the frames are now: files, folders (subfolders searched) or glob patterns; repeat for more. Frames are matched by the longest common path ending. [default: the paths in RESULTS, from here or from RESULTS' folder]"),
    report_thr: float = typer.Option(REPORT_THR, "--report-thr", callback=in_range(0.0, 1.0), help=THR_HELP),
    report_max: int = typer.Option(REPORT_MAX, "--report-max", callback=in_range(1, None), help=MAX_HELP),
    bands: Optional[str] = typer.Option(None, help="Raster bands (1-based) shown as R,G,B, e.g. '4,3,2'. [default: the run's, as recorded in RESULTS, else the first three]"),
) -> int:
    """Write a self-contained review report (HTML, crops, overview map) for a detect output.

    Exit codes: 0 all done; 1 some frames could not be found or read (their detections are
    listed without pictures); 2 usage error or nothing could be done.
    """
    from sspnet_cli import api

    done = api.report(results, out, images=images, report_thr=report_thr, report_max=report_max, bands=parse_bands(bands))
    for warning in done.loaded.warnings:
        say(f"warning: {warning}")
    for item, problem in done.missing:
        say(f"skipped {item}: {problem}")
    for warning in done.summary.warnings:
        say(f"warning: {warning}")
    summary = done.summary
    left = f" ({summary.left_out} more left out by --report-max)" if summary.left_out else ""
    say(f"wrote {summary.index}: {summary.images} image(s), {summary.listed} detection(s) to review{left}")
    return done.exit_code
