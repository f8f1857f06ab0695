"""``sspnet detect``: tile, detect, merge and write GeoJSON / CSV / COCO JSON.

Runs as a job (``inference/jobs.py``): in one process, or under ``torchrun`` in many with no extra
flag; results stream to ``OUT.parts/`` and are merged and written once at the end.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sspnet_cli.cli.app import app, err
from sspnet_cli.cli.options import parse_bands, parse_batch_size, parse_scales
from sspnet_cli.distributed import DistContext, setup
from sspnet_cli.errors import SSPNetError
from sspnet_cli.inference import jobs
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
    out: Path = typer.Option(..., "--out", "-o", help="Output file; the suffix picks the format: .geojson, .csv or .json (COCO-style). Written atomically, once, at the end."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to use. [default: the trained model shipped in weights/]"),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N. Under torchrun each process uses cuda:LOCAL_RANK (or the CPU)."),
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
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same inputs, --out, weights and options: what OUT.parts/ already holds is skipped. [default: off]"),
    keep_parts: bool = typer.Option(False, "--keep-parts", help="Keep OUT.parts/ (per-process partial results) after the output is written. [default: removed]"),
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
    ctx = setup(device)
    try:
        return _run_job(ctx, inputs, out, weights, device, options, recursive, save_vis, resume, keep_parts)
    finally:
        ctx.close()


def _run_job(ctx: DistContext, inputs, out, weights, device, options, recursive, save_vis, resume, keep_parts) -> int:
    expanded = expand_inputs(inputs, recursive)
    if ctx.is_main:
        for item, problem in expanded.problems:
            err.print(f"skipped {item}: {problem}", markup=False)
    if not expanded.paths:
        raise SSPNetError("no images to process")
    detector = Detector(weights, device=str(ctx.device) if ctx.distributed else device, **options)
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
    meta = {"weights": detector.weights.name if detector.weights else None, "options": detector.options.to_dict()}
    write_results(out, results, meta)
    if save_vis is not None:
        _save_overlays(save_vis, results)
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
