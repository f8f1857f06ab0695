"""``sspnet detect``: tile, detect, merge and write GeoJSON / CSV / COCO JSON."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sspnet_cli.cli.app import app, err
from sspnet_cli.cli.options import parse_batch_size, parse_bands, parse_scales
from sspnet_cli.errors import SSPNetError
from sspnet_cli.inference.engine import Detector, Failure, RunStats
from sspnet_cli.inference.inputs import expand_inputs
from sspnet_cli.inference.sources import open_source
from sspnet_cli.inference.tiling import parse_tile
from sspnet_cli.outputs import check_writable, write_results
from sspnet_cli.outputs.overlay import save_overlay
from sspnet_cli.types import ImageResult



@app.command()
def detect(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns (quote patterns). JPEG/PNG via OpenCV; TIFF/GeoTIFF and other GDAL rasters via rasterio."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file; the suffix picks the format: .geojson, .csv or .json (COCO-style). Written atomically."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to use. [default: the trained model shipped in weights/]"),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."),
    tile: str = typer.Option("640x512", help="Tile size WIDTHxHEIGHT in pixels."),
    overlap: int = typer.Option(30, help="Overlap between neighbouring tiles, in pixels."),
    score_thr: float = typer.Option(0.3, "--score-thr", help="Keep detections scoring at least this (for people using the output; eval uses the model's 0.05 floor)."),
    nms_iou: float = typer.Option(0.5, "--nms-iou", help="IoU above which overlapping detections from different tiles are merged."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Tiles per forward pass: auto (1 on the CPU, where batching is slower; 8 on CUDA) or a number."),
    half: bool = typer.Option(False, "--half", help="fp16 autocast on CUDA (faster, slightly different scores). [default: off]"),
    scales: str = typer.Option("1", help="Test scales, e.g. '2,3' for the reference's up-sampled test (boxes and scores averaged over scales)."),
    bands: Optional[str] = typer.Option(None, help="Raster bands (1-based) shown to the model as R,G,B, e.g. '4,3,2'. [default: the first three; grey replicated]"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also look in subfolders of folder inputs. [default: off]"),
    save_vis: Optional[Path] = typer.Option(None, "--save-vis", help="Also save each image with its boxes drawn into this folder (huge rasters down-scaled)."),
) -> int:
    """Find people in images: tile each frame, detect in batches, merge, write one results file.

    Exit codes: 0 all done; 1 some inputs failed (the rest are in the output); 2 usage error or
    nothing could be done.
    """
    check_writable(out)
    if save_vis is not None:
        _check_folder(save_vis)
    options = dict(
        tile=parse_tile(tile),
        overlap=overlap,
        score_thr=score_thr,
        nms_iou=nms_iou,
        batch_size=parse_batch_size(batch_size),
        half=half,
        scales=parse_scales(scales),
        bands=parse_bands(bands),
    )
    expanded = expand_inputs(inputs, recursive)
    for item, problem in expanded.problems:
        err.print(f"skipped {item}: {problem}", markup=False)
    if not expanded.paths:
        raise SSPNetError("no images to process")
    detector = Detector(weights, device=device, **options)
    results, failures, stats = _run_with_progress(detector, expanded.paths)
    failures = [Failure(item, problem) for item, problem in expanded.problems] + failures
    if not results:
        _print_summary(stats, failures)
        raise SSPNetError("no image could be processed; nothing written")
    meta = {"weights": detector.weights.name if detector.weights else None, "options": detector.options.to_dict()}
    write_results(out, results, meta)
    if save_vis is not None:
        _save_overlays(save_vis, results)
    _print_summary(stats, failures)
    err.print(f"wrote {len(results)} image(s), {stats.detections} detection(s) to {out}", markup=False)
    return 1 if failures else 0


def _check_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SSPNetError(f"cannot create folder {folder}: {exc.strerror}") from None


def _run_with_progress(detector: Detector, paths: list[Path]) -> tuple[list[ImageResult], list[Failure], RunStats]:
    results: list[ImageResult] = []
    failures: list[Failure] = []
    stats = RunStats()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False, redirect_stdout=False, redirect_stderr=False) as progress:
        images = progress.add_task("images", total=len(paths))
        tiles = progress.add_task("tiles", total=0)
        on_frame = lambda name, n: progress.update(tiles, total=(progress.tasks[tiles].total or 0) + n)  # noqa: E731
        on_tiles = lambda n: progress.advance(tiles, n)  # noqa: E731
        for result in detector.run(paths, on_tiles=on_tiles, on_frame=on_frame, stats=stats):
            if isinstance(result, Failure):
                failures.append(result)
                progress.console.print(f"failed {result.image}: {result.problem}", markup=False)
            else:
                results.append(result)
            progress.advance(images)
    return results, failures, stats


def _save_overlays(folder: Path, results: list[ImageResult]) -> None:
    used: set[str] = set()
    for result in results:
        stem = Path(result.image).stem
        name, k = f"{stem}.jpg", 1
        while name in used:
            k += 1
            name = f"{stem}_{k}.jpg"
        used.add(name)
        with open_source(result.image) as source:
            save_overlay(folder / name, source, result.detections)


def _print_summary(stats: RunStats, failures: list[Failure]) -> None:
    table = Table(title="Summary")
    for col in ("images", "failed", "tiles", "detections", "seconds", "megapixels/s"):
        table.add_column(col, justify="right")
    table.add_row(
        str(stats.images), str(len(failures)), str(stats.tiles), str(stats.detections),
        f"{stats.seconds:.1f}", f"{stats.megapixels_per_second:.2f}",
    )
    err.print(table)
    for f in failures:
        err.print(f"  failed: {f.image}: {f.problem}", markup=False)
