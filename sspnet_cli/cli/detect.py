"""``sspnet detect``: tile, detect, merge and write GeoJSON / CSV / COCO JSON.

Runs as a job (``inference/jobs.py``): in one process, or under ``torchrun`` in many with no extra
flag; results stream to ``OUT.parts/`` and are merged and written once at the end.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sspnet_cli.cli.app import app, err
from sspnet_cli.cli.options import in_range, parse_bands, parse_batch_size, parse_scales
from sspnet_cli.distributed import DistContext, setup
from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.dem import Dem
from sspnet_cli.inference import jobs
from sspnet_cli.inference.engine import Detector, Failure, RunStats
from sspnet_cli.imagery.inputs import expand_inputs
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.imagery.tiling import parse_tile
from sspnet_cli.geo.camera import apply_camera_models, open_ground
from sspnet_cli.outputs import check_writable, write_results
from sspnet_cli.outputs.heatmap import save_heatmaps
from sspnet_cli.outputs.overlay import save_overlay
from sspnet_cli.outputs.report import DEFAULT_REPORT_MAX, DEFAULT_REPORT_THR, check_report_dir, write_report
from sspnet_cli.cli.report import MAX_HELP, THR_HELP, check_report_options
from sspnet_cli.types import ImageResult


@app.command()
def detect(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns (quote patterns). JPEG/PNG via OpenCV; TIFF/GeoTIFF and other GDAL rasters via rasterio."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file; the suffix picks the format: .geojson, .csv or .json (COCO-style). Written atomically, once, at the end."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to use. [default: the trained model shipped in weights/]"),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N. Under torchrun each process uses cuda:LOCAL_RANK (or the CPU)."),
    tile: str = typer.Option("640x512", help="Tile size WIDTHxHEIGHT in pixels."),
    overlap: int = typer.Option(30, callback=in_range(0, None), help="Overlap between neighbouring tiles, in pixels."),
    score_thr: float = typer.Option(0.3, "--score-thr", callback=in_range(0.0, 1.0), help="Keep detections scoring at least this (for people using the output; eval uses the model's 0.05 floor)."),
    nms_iou: float = typer.Option(0.5, "--nms-iou", callback=in_range(0.0, 1.0), help="IoU above which overlapping detections from different tiles are merged."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Tiles per forward pass: auto (1 on the CPU, where batching is slower; 8 on CUDA) or a number."),
    half: bool = typer.Option(False, "--half", help="fp16 autocast on CUDA (faster, slightly different scores). [default: off]"),
    scales: str = typer.Option("1", help="Test scales, e.g. '2,3' for the reference's up-sampled test (boxes and scores averaged over scales)."),
    bands: Optional[str] = typer.Option(None, help="Raster bands (1-based) shown to the model as R,G,B, e.g. '4,3,2'. [default: the first three; grey replicated]"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also look in subfolders of folder inputs. [default: off]"),
    save_vis: Optional[Path] = typer.Option(None, "--save-vis", help="Also save each image with its boxes drawn into this folder (huge rasters down-scaled)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same inputs, --out, weights and options: what OUT.parts/ already holds is skipped. [default: off]"),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep OUT.parts/ (per-process partial results) after the output is written. [default: removed]"),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a review report (index.html, crops, overview map) into this folder; opens from disk, offline. [default: none]"),
    report_thr: float = typer.Option(DEFAULT_REPORT_THR, "--report-thr", callback=in_range(0.0, 1.0), help=THR_HELP),
    report_max: int = typer.Option(DEFAULT_REPORT_MAX, "--report-max", callback=in_range(1, None), help=MAX_HELP),
    heatmaps: bool = typer.Option(False, "--heatmaps", help="With --report or --save-vis: also draw the SSPNet attention (scale-selection) maps per pyramid level and combined, from the same forward pass. FPN models have none. [default: off]"),
    camera_model: bool = typer.Option(True, "--camera-model/--no-camera-model", help="Place detections in drone photos on the ground from the camera's EXIF/XMP metadata (GPS, gimbal, focal length); --no-camera-model keeps pixel geometry for photos. Georeferenced rasters always use their own georeferencing. [default: on]"),
    ground_elevation: Optional[float] = typer.Option(None, "--ground-elevation", help="Ground height in metres in the GPS altitude's datum, for the camera model. [default: flat ground RelativeAltitude below the camera]"),
    dem: Optional[Path] = typer.Option(None, "--dem", help="A DEM GeoTIFF (heights in the GPS altitude's datum) for the camera model; rays are intersected with it iteratively. [default: none]"),
) -> int:
    """Find people in images: tile each frame, detect in batches, merge, write one results file.

    Exit codes: 0 all done; 1 some inputs failed (the rest are in the output); 2 usage error or
    nothing could be done; 130 interrupted (the partial results in OUT.parts/ are kept for --resume).
    """
    options = dict(
        tile=parse_tile(tile), overlap=overlap, score_thr=score_thr, nms_iou=nms_iou,
        batch_size=parse_batch_size(batch_size), half=half, scales=parse_scales(scales), bands=parse_bands(bands),
    )
    check_writable(out)
    if save_vis is not None:
        _check_folder(save_vis)
    if report is not None:
        check_report_options(report_thr, report_max)
        check_report_dir(report)
    if heatmaps and report is None and save_vis is None:
        raise SSPNetError("--heatmaps draws into --report or --save-vis; give one of them")
    options["heatmaps"] = heatmaps
    if not camera_model and (ground_elevation is not None or dem is not None):
        raise SSPNetError("--ground-elevation and --dem are for the camera model; drop them or --no-camera-model")
    ground = open_ground(ground_elevation, dem) if camera_model else None
    extras = _Extras(save_vis, report, report_thr, report_max, camera_model, ground_elevation, ground)
    ctx = setup(device)
    try:
        return _run_job(ctx, inputs, out, weights, device, options, recursive, extras, resume, keep_parts)
    finally:
        ctx.close()
        if ground is not None:
            ground.close()


@dataclass
class _Extras:
    """What detect does with the merged results besides writing OUT."""

    save_vis: Optional[Path]
    report: Optional[Path]
    report_thr: float
    report_max: int
    camera_model: bool
    ground_elevation: Optional[float]
    dem: Optional[Dem]


def _run_job(ctx: DistContext, inputs, out, weights, device, options, recursive, extras: _Extras, resume, keep_parts) -> int:
    expanded = expand_inputs(inputs, recursive)
    if ctx.is_main:
        for item, problem in expanded.problems:
            err.print(f"skipped {item}: {problem}", markup=False)
    if not expanded.paths:
        raise SSPNetError("no images to process")
    detector = Detector(weights, device=str(ctx.device) if ctx.distributed else device, **options)
    if options["heatmaps"] and not getattr(detector.model.neck, "has_attention", False):
        if ctx.is_main:
            err.print("note: --heatmaps: this model's FPN neck has no attention maps; none are drawn", markup=False)
        detector = detector.with_options(heatmaps=False)
    parts = jobs.parts_dir_for(out)
    problem = None
    if ctx.is_main:
        try:
            jobs.check_or_write_manifest(parts, jobs.manifest_for(detector), resume)
        except SSPNetError as exc:
            problem = str(exc)
    problem = ctx.broadcast_object(problem)
    if problem:
        raise SSPNetError(problem)
    infos = ctx.broadcast_object([jobs.probe(p) for p in expanded.paths] if ctx.is_main else None)
    units = jobs.plan_units(infos, detector.options.tile, detector.options.overlap)  # type: ignore[arg-type]
    share = jobs.assign(units, ctx.world_size)[ctx.rank]
    done = set()
    if resume:
        records = jobs.read_records(parts)
        done = {u.uid for u in units if u.uid in records and jobs.is_current(records[u.uid], infos[u.input_index])}  # type: ignore[index]
        if ctx.is_main and done:
            err.print(f"resuming: {len(done)} of {len(units)} work units already done", markup=False)
    stats = RunStats()
    writer = jobs.PartWriter(parts, ctx.rank)
    try:
        _run_with_progress(ctx, detector, infos, units, share, writer, done, stats, parts)  # type: ignore[arg-type]
    finally:
        writer.close()
    all_stats = _gather_stats(ctx, stats)
    try:
        ctx.barrier()
    except RuntimeError as exc:
        raise SSPNetError(f"a process of this job failed ({str(exc).splitlines()[0][:100]}); nothing was written") from None
    if not ctx.is_main:
        return 0
    results: list[ImageResult] = []
    failures = [Failure(item, why) for item, why in expanded.problems]
    for item in jobs.gather(detector, infos, units, parts):  # type: ignore[arg-type]
        (failures if isinstance(item, Failure) else results).append(item)  # type: ignore[arg-type]
    if not results:
        _print_summary(all_stats, results, failures)
        raise SSPNetError("no image could be processed; nothing written")
    if extras.camera_model:
        results = apply_camera_models(results, extras.ground_elevation, extras.dem)
    meta = {"weights": detector.weights.name if detector.weights else None, "options": detector.options.to_dict()}
    write_results(out, results, meta)
    if extras.save_vis is not None:
        _save_overlays(extras.save_vis, results)
    if extras.report is not None:
        seconds = max((s.seconds for s in all_stats), default=0.0)
        summary = write_report(
            extras.report, results, {**meta, "results": str(out), "seconds": seconds, "device": str(detector.device)},
            extras.report_thr, extras.report_max, heatmaps=options["heatmaps"],  # asked: the page says when there are none
            failures=[(f.image, f.problem) for f in failures],
        )
        for warning in summary.warnings:
            err.print(f"warning: {warning}", markup=False)
        err.print(f"wrote the review report {summary.index}", markup=False)
    if not keep_parts:
        jobs.remove_parts(parts)
    _print_summary(all_stats, results, failures)
    detections = sum(len(r.detections) for r in results)
    err.print(f"wrote {len(results)} image(s), {detections} detection(s) to {out}", markup=False)
    return 1 if failures else 0


def _check_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SSPNetError(f"cannot create folder {folder}: {exc.strerror}") from None


def _run_with_progress(ctx, detector, infos, units, share, writer, done, stats, parts) -> None:
    """Rank 0 shows one bar for the whole job (units done, counted from every process's part
    file) and this process's tiles; other processes stay quiet."""
    if not ctx.is_main:
        jobs.run_share(detector, infos, units, share, writer, done, stats)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, redirect_stdout=False, redirect_stderr=False) as progress:
        label = "images" if len(units) == len(infos) else "units"
        job_task = progress.add_task(label if not ctx.distributed else f"{label} (all processes)", total=len(units), completed=len(done))
        tile_task = progress.add_task("tiles" if not ctx.distributed else "tiles (this process)", total=0)
        stop = threading.Event()

        def poll() -> None:  # other processes report through their part files
            while not stop.wait(1.0):
                progress.update(job_task, completed=len(jobs.read_records(parts)))

        poller = threading.Thread(target=poll, daemon=True) if ctx.distributed else None
        if poller:
            poller.start()
        try:
            jobs.run_share(
                detector, infos, units, share, writer, done, stats,
                on_tiles=lambda n: progress.advance(tile_task, n),
                on_unit=None if ctx.distributed else (lambda: progress.advance(job_task)),
                on_frame=lambda _name, n: progress.update(tile_task, total=(progress.tasks[tile_task].total or 0) + n),
            )
        finally:
            stop.set()
        progress.update(job_task, completed=len(jobs.read_records(parts)))


def _gather_stats(ctx: DistContext, stats: RunStats) -> list[RunStats]:
    if not ctx.initialised:
        return [stats]
    import torch.distributed as dist

    box: list = [None] * ctx.world_size
    dist.all_gather_object(box, stats)
    return box


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
            maps = result.attention
            if maps:
                save_heatmaps(folder, Path(name).stem, source, maps)


def _print_summary(all_stats: list[RunStats], results: list[ImageResult], failures: list[Failure]) -> None:
    table = Table(title="Summary")
    for col in ("process", "images", "failed", "tiles", "detections", "seconds", "megapixels/s"):
        table.add_column(col, justify="right")
    if len(all_stats) > 1:
        for rank, s in enumerate(all_stats):
            table.add_row(str(rank), "", str(s.failed), str(s.tiles), "", f"{s.seconds:.1f}", f"{s.megapixels_per_second:.2f}")
    tiles = sum(s.tiles for s in all_stats)
    seconds = max((s.seconds for s in all_stats), default=0.0)
    megapixels = sum(s.megapixels for s in all_stats)
    detections = sum(len(r.detections) for r in results)
    table.add_row(
        "all", str(len(results)), str(len(failures)), str(tiles), str(detections),
        f"{seconds:.1f}", f"{megapixels / seconds if seconds > 0 else 0.0:.2f}",
    )
    err.print(table)
    for f in failures:
        err.print(f"  failed: {f.image}: {f.problem}", markup=False)
