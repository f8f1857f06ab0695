"""``sspnet detect``: parse the options, run :func:`sspnet_cli.api.detect`, print what it did.

Nothing heavy is imported until the command runs, so ``--help`` and option errors answer at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sspnet_cli.cli.console import err, say
from sspnet_cli.cli.options import FLIP_HELP, PRECISION_HELP, in_range, parse_bands, parse_batch_size, parse_pair, parse_scales, parse_tile
from sspnet_cli.config import REPORT_MAX, REPORT_THR

THR_HELP = "List detections scoring at least this, best first (the results hold nothing below detect's --score-thr)."
MAX_HELP = "List at most this many detections; the page says how many more were left out."


def detect(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns (quote patterns). JPEG/PNG via OpenCV; TIFF/GeoTIFF and other GDAL rasters via rasterio."),
    out: list[Path] = typer.Option(..., "--out", "-o", help="Output file; the suffix picks the format: .geojson, .csv, .json (COCO-style), .gpx (waypoints for handhelds, CalTopo/SARTopo) or .kml (Google Earth). Repeat for several from one run (--out a.geojson --out a.gpx). Written atomically, once, at the end."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to use. [default: the trained model shipped in weights/]"),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N. Under torchrun each process uses cuda:LOCAL_RANK (or the CPU)."),
    backend: str = typer.Option("auto", help="auto: onnxruntime on the CPU where the onnxruntime and onnx packages are installed (in fp32 torch's detections to float precision, as fast or faster; int8 per --precision: benchmarks/README.md; a checkpoint is exported once and kept in $SSPNET_CACHE or ~/.cache/sspnet), torch otherwise and on CUDA. torch, or onnxruntime (--weights an export of `sspnet export`, or a checkpoint)."),
    tile: str = typer.Option("640x512", help="Tile size WIDTHxHEIGHT in pixels."),
    overlap: int = typer.Option(30, callback=in_range(0, None), help="Overlap between neighbouring tiles, in pixels."),
    score_thr: float = typer.Option(0.3, "--score-thr", callback=in_range(0.0, 1.0), help="Keep detections scoring at least this (for people using the output; eval uses the model's 0.05 floor)."),
    nms_iou: float = typer.Option(0.5, "--nms-iou", callback=in_range(0.0, 1.0), help="IoU above which overlapping detections from different tiles are merged."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Tiles per forward pass: auto (1 on the CPU, where batching is slower; 8 on CUDA) or a number."),
    lanes: str = typer.Option("auto", "--lanes", help="Tiles in flight at once: auto (2 on a CPU with 2 or more threads and the onnxruntime backend, each lane a share of the threads: its small single-threaded steps no longer leave a core idle; 1 on CUDA and with torch) or a number. The same detections either way; each lane holds a tile's working set, so --lanes 1 is for machines short of memory (about half the peak on a huge raster, 1.4x slower)."),
    half: bool = typer.Option(False, "--half", help="fp16 autocast on CUDA (faster, slightly different scores). [default: off]"),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    scales: str = typer.Option("model", help="Test scales: 'model' (the ones the checkpoint records, chosen on its validation split; 1 where it records none), or numbers: '1' (fastest), '1,1.5' (each tile also at 1.5x: more of the smallest people, about 2.5x the time), '2,3' (the reference's up-sampled test). Boxes and scores are averaged over the scales."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help=FLIP_HELP),
    bands: Optional[str] = typer.Option(None, help="Raster bands (1-based) shown to the model as R,G,B, e.g. '4,3,2'. [default: the first three; grey replicated]"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also look in subfolders of folder inputs. [default: off]"),
    save_vis: Optional[Path] = typer.Option(None, "--save-vis", help="Also save each image with its boxes drawn into this folder (huge rasters down-scaled)."),
    resume: bool = typer.Option(False, "--resume", help="Keep finished images in OUT.parts/ as the run goes, and continue an interrupted run with the same inputs, --out, weights and options (what OUT.parts/ holds is skipped). [default: off: one process keeps results in memory]"),
    restart: bool = typer.Option(False, "--restart", help="Discard OUT.parts/ left by an earlier, unfinished run and start over. [default: off]"),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep OUT.parts/ (per-process partial results) after the output is written. [default: removed]"),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a review report (index.html, crops, overview map) into this folder; opens from disk, offline. [default: none]"),
    report_thr: float = typer.Option(REPORT_THR, "--report-thr", callback=in_range(0.0, 1.0), help=THR_HELP),
    report_max: int = typer.Option(REPORT_MAX, "--report-max", callback=in_range(1, None), help=MAX_HELP),
    heatmaps: bool = typer.Option(False, "--heatmaps", help="With --report or --save-vis: also draw the SSPNet attention (scale-selection) maps per pyramid level and combined, from the same forward pass. FPN models have none. [default: off]"),
    camera_model: bool = typer.Option(True, "--camera-model/--no-camera-model", help="Place detections in drone photos on the ground from the camera's EXIF/XMP metadata (GPS, gimbal, focal length); --no-camera-model keeps pixel geometry for photos. Georeferenced rasters always use their own georeferencing."),
    ground_elevation: Optional[float] = typer.Option(None, "--ground-elevation", help="Ground height in metres in the GPS altitude's datum, for the camera model. [default: flat ground RelativeAltitude below the camera]"),
    dem: Optional[Path] = typer.Option(None, "--dem", help="A DEM GeoTIFF (heights in the GPS altitude's datum) for the camera model; rays are intersected with it iteratively. [default: none]"),
    max_off_nadir: float = typer.Option(30.0, "--max-off-nadir", callback=in_range(0.0, 180.0), help="Photos whose camera looked further than this many degrees from straight down keep their positions, flagged position_quality \"oblique\" (their error grows fast with the angle)."),
    person_size: str = typer.Option("0.3,3.0", "--person-size", help="MIN,MAX metres a person's box may measure on the ground along its longer side (a child's shoulders seen from above to a person lying down, with slack), where the ground sample distance is known."),
    coverage: Optional[Path] = typer.Option(None, "--coverage", help="Also write the searched area (.geojson or .kml): each frame's ground footprint with its ground sample distance, a person's size in its pixels and the model's recall at that size (its probability of detection, from the model's recall table), and the union of the footprints per POD band (>= 0.8, 0.5-0.8, < 0.5) with its area in hectares; overlaps combine as independent looks. [default: none]"),
    size_filter: str = typer.Option("flag", "--size-filter", help="flag (mark boxes outside --person-size with size_plausible false), drop (remove them) or off."),
) -> int:
    """Find people in images: tile each frame, detect in batches, merge, write one results file.

    Exit codes: 0 all done; 1 some inputs failed (the rest are in the output); 2 usage error or
    nothing could be done; 130 interrupted.
    """
    from sspnet_cli import api
    from sspnet_cli.cli.progress import TileProgress

    parsed = dict(
        tile=parse_tile(tile), batch_size=parse_batch_size(batch_size), lanes=parse_batch_size(lanes, "--lanes"), scales=parse_scales(scales), bands=parse_bands(bands),
        person_size=parse_pair(person_size, "--person-size"),
    )
    with TileProgress("images") as bars:
        progress = api.DetectProgress(
            on_units=bars.units, on_planned_tiles=bars.planned, on_frame=bars.frame, on_tiles=bars.tiles,
            on_unit=bars.unit, on_units_done=bars.units_done_now, on_message=say,
        )
        try:
            summary = api.detect(
                inputs, out, weights=weights, device=device, backend=backend, overlap=overlap, score_thr=score_thr, nms_iou=nms_iou,
                half=half, precision=precision, flip=flip, heatmaps=heatmaps, recursive=recursive, save_vis=save_vis, report=report,
                report_thr=report_thr, report_max=report_max, camera_model=camera_model,
                ground_elevation=ground_elevation, dem=dem, max_off_nadir=max_off_nadir, size_filter=size_filter, coverage=coverage, resume=resume, restart=restart, keep_parts=keep_parts, progress=progress,
                **parsed,
            )
        except KeyboardInterrupt:
            bars.__exit__(None, None, None)
            _say_interrupted(out[0], resume)
            raise typer.Exit(130)
    if not summary.is_main:
        return summary.exit_code
    for note in summary.notes:
        say(f"note: {note}")
    _print_summary(summary)
    if summary.report is not None:
        left = f"; {summary.report.left_out} detection(s) left out by --report-max {report_max}" if summary.report.left_out else ""
        say(f"wrote the review report {summary.report.index}{left}")
    if summary.parts is not None:
        say(f"kept the part files in {summary.parts}/ (--keep-parts)")
    check = summary.size_check
    if check.judged:
        what = f"{check.dropped} dropped" if check.dropped else f"{check.implausible} flagged size_plausible false"
        say(f"size check: {check.implausible} of {check.judged} box(es) with a known ground size are outside {person_size} m ({what})")
    if summary.coverage is not None and coverage is not None:
        bands = ", ".join(f"{b['name']} {b['area_ha']:.2f} ha" for b in summary.coverage.bands)
        say(f"wrote {coverage}: {len(summary.coverage.frames)} footprint(s), {summary.coverage.total_area_ha:.2f} ha searched ({bands})")
    say(f"wrote {len(summary.results)} image(s), {summary.detections} detection(s) to {', '.join(str(o) for o in summary.outputs)}")
    return summary.exit_code


def _say_interrupted(out: Path, resume: bool) -> None:
    """What an interrupted run kept, and how to go on."""
    from sspnet_cli.api.detect import leftover_parts

    parts, finished = leftover_parts(out, discard_unfinished=True)
    if finished:
        say(f"interrupted: {finished} finished work unit(s) kept in {parts}/; run the same command with --resume to continue, or with --restart to start over")
    elif resume:
        say("interrupted before any image finished; nothing was kept")
    else:
        say("interrupted: nothing was kept (one process keeps results in memory); pass --resume to keep finished images as a run goes")


def _print_summary(summary) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"Summary ({summary.runtime})" if summary.runtime else "Summary")
    for col in ("process", "images", "failed", "tiles", "detections", "seconds", "megapixels/s"):
        table.add_column(col, justify="right")
    stats = summary.stats
    if len(stats) > 1:
        for rank, s in enumerate(stats):
            table.add_row(str(rank), "", str(s.failed), str(s.tiles), "", f"{s.seconds:.1f}", f"{s.megapixels_per_second:.2f}")
    tiles = sum(s.tiles for s in stats)
    seconds = summary.seconds
    megapixels = sum(s.megapixels for s in stats)
    failed = len(summary.failures) + len(summary.skipped)
    table.add_row(
        "all", str(len(summary.results)), str(failed), str(tiles), str(summary.detections),
        f"{seconds:.1f}", f"{megapixels / seconds if seconds > 0 else 0.0:.2f}",
    )
    err.print(table)
    for f in summary.failures:
        say(f"  failed: {f.image}: {f.problem}")
