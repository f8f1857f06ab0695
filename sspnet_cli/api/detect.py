"""``detect``: the whole detect job — inputs, work units, resume, gathering, camera placement,
writing, overlays and the review report — as one call that returns what it did.

    from sspnet_cli import detect
    summary = detect(["flight/"], out="found.geojson")
    summary.results[0].detections.boxes, summary.written

``sspnet detect`` is this call plus printing. In one process the units' detections are merged
in memory; part files (``OUT.parts/``, see :mod:`sspnet_cli.inference.jobs`) exist only where
they are needed: several processes (torchrun), ``resume`` (a run that can be continued) or
``keep_parts``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from sspnet_cli.atomic import check_folder, missing_folder
from sspnet_cli.distributed import DistContext, setup
from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.camera import MAX_OFF_NADIR, apply_camera_models, open_ground
from sspnet_cli.geo.coverage import Coverage
from sspnet_cli.geo.coverage import coverage as coverage_of
from sspnet_cli.geo.dem import Dem
from sspnet_cli.geo.plausibility import PERSON_SIZE_M, SizeCheck, apply_size_filter, check_person_size
from sspnet_cli.imagery.inputs import expand_inputs
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.inference import jobs
from sspnet_cli.inference.engine import DetectOptions, Detector, Failure, RunStats, UnitResult
from sspnet_cli.outputs import check_writable, write_results
from sspnet_cli.outputs.coverage_file import check_coverage_path, write_coverage
from sspnet_cli.outputs.geojson import coordinates_kind
from sspnet_cli.outputs.heatmap import save_heatmaps
from sspnet_cli.outputs.waypoints import unplaced
from sspnet_cli.outputs.overlay import save_overlay
from sspnet_cli.outputs.report import DEFAULT_REPORT_MAX, DEFAULT_REPORT_THR, ReportSummary, check_report_dir, write_report
from sspnet_cli.types import ImageResult

PathLike = Union[str, Path]


@dataclass
class DetectProgress:
    """Callbacks through which a job reports while it runs (every one optional; the API never
    prints). ``on_units(total, already_done)`` and ``on_planned_tiles(tiles)`` (the tiles of the
    units left to do, for an ETA by tiles) once the work is planned; ``on_frame(name,
    tiles)`` when a frame opens; ``on_tiles(n)`` as tiles finish; ``on_unit()`` as a work unit
    finishes (in a several-process job: ``on_units_done(n)``, the count over every process, about
    once a second); ``on_message(text)`` for one-line notes (skipped inputs, resuming)."""

    on_units: Optional[Callable[[int, int], None]] = None
    on_planned_tiles: Optional[Callable[[int], None]] = None
    on_frame: Optional[Callable[[str, int], None]] = None
    on_tiles: Optional[Callable[[int], None]] = None
    on_unit: Optional[Callable[[], None]] = None
    on_units_done: Optional[Callable[[int], None]] = None
    on_message: Optional[Callable[[str], None]] = None

    def say(self, text: str) -> None:
        if self.on_message is not None:
            self.on_message(text)


@dataclass
class CameraSettings:
    """How drone photos are placed on the ground (``--camera-model``, ``--ground-elevation``,
    ``--dem``); recorded with a run's part files so a report from them places detections alike."""

    enabled: bool = True
    ground_elevation: Optional[float] = None
    dem: Optional[str] = None
    max_off_nadir: float = MAX_OFF_NADIR

    def to_dict(self) -> dict[str, Any]:
        return {"camera_model": self.enabled, "ground_elevation": self.ground_elevation, "dem": self.dem, "max_off_nadir": self.max_off_nadir}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CameraSettings":
        return cls(
            bool(data.get("camera_model", True)), data.get("ground_elevation"), data.get("dem"),
            float(data.get("max_off_nadir", MAX_OFF_NADIR)),
        )


@dataclass
class DetectSummary:
    """What a detect job did. ``results`` and ``failures`` in input order (on the main process
    of a several-process job; empty on the others); ``stats`` one per process; ``skipped`` the
    inputs that named no image; ``written`` the output file (None where nothing was written);
    ``parts`` the part folder kept for ``resume`` or ``keep_parts``; ``notes`` what the user
    should know (heatmaps unavailable, report warnings)."""

    out: Path
    results: list[ImageResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stats: list[RunStats] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: Optional[Path] = None
    outputs: list[Path] = field(default_factory=list)
    report: Optional[ReportSummary] = None
    parts: Optional[Path] = None
    resumed_units: int = 0
    notes: list[str] = field(default_factory=list)
    size_check: SizeCheck = field(default_factory=SizeCheck)
    coverage: Optional[Coverage] = None
    is_main: bool = True
    #: how the model ran, e.g. "onnxruntime, int8, 2 lanes" (Detector.runtime)
    runtime: str = ""

    @property
    def detections(self) -> int:
        return sum(len(r.detections) for r in self.results)

    @property
    def seconds(self) -> float:
        return max((s.seconds for s in self.stats), default=0.0)

    @property
    def exit_code(self) -> int:
        """0 all done; 1 some inputs failed (the others are in the output)."""
        return 1 if self.failures or self.skipped else 0


class DetectJob:
    """One detect job: everything is checked when it is made, before anything is created;
    :meth:`run` does the work. In a torchrun job every process makes and runs the same job."""

    def __init__(
        self,
        inputs: Union[PathLike, Sequence[PathLike]],
        out: Union[PathLike, Sequence[PathLike]],
        *,
        weights: Optional[PathLike] = None,
        device: str = "auto",
        backend: str = "auto",
        options: Optional[DetectOptions] = None,
        recursive: bool = False,
        save_vis: Optional[PathLike] = None,
        report: Optional[PathLike] = None,
        report_thr: float = DEFAULT_REPORT_THR,
        report_max: int = DEFAULT_REPORT_MAX,
        camera: Optional[CameraSettings] = None,
        person_size: Sequence[float] = PERSON_SIZE_M,
        size_filter: str = "flag",
        coverage: Optional[PathLike] = None,
        recall_table: Optional[Sequence[dict[str, float]]] = None,
        resume: bool = False,
        restart: bool = False,
        keep_parts: bool = False,
    ) -> None:
        self.inputs = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs]
        self.outs = [Path(out)] if isinstance(out, (str, Path)) else [Path(o) for o in out]
        if not self.outs:
            raise SSPNetError("give at least one output file")
        self.out = self.outs[0]  # names the part folder
        self.weights = weights
        self.device = device
        self.backend = backend
        self.options = options or DetectOptions()
        self.recursive = recursive
        self.save_vis = Path(save_vis) if save_vis is not None else None
        self.report_dir = Path(report) if report is not None else None
        self.report_thr, self.report_max = report_thr, report_max
        self.camera = camera or CameraSettings()
        self.person_size, self.size_filter = tuple(person_size), size_filter
        self.coverage_path = check_coverage_path(coverage) if coverage is not None else None
        self.recall_table = list(recall_table) if recall_table is not None else None
        self.resume, self.restart, self.keep_parts = resume, restart, keep_parts
        self.parts = jobs.parts_dir_for(self.out)
        self._check()

    def _check(self) -> None:
        if len({o.resolve() for o in self.outs}) != len(self.outs):
            raise SSPNetError("the same output file is given twice")
        for out in self.outs:
            check_writable(out)
        self.new_folders = sorted({f for f in (missing_folder(o) for o in self.outs) if f is not None})
        if self.save_vis is not None:
            check_folder(self.save_vis)
        if self.report_dir is not None:
            if not 0.0 <= self.report_thr <= 1.0:
                raise SSPNetError(f"report_thr must be between 0 and 1, got {self.report_thr}")
            if self.report_max < 1:
                raise SSPNetError(f"report_max must be at least 1, got {self.report_max}")
            check_report_dir(self.report_dir)
        if self.options.heatmaps and self.report_dir is None and self.save_vis is None:
            raise SSPNetError("--heatmaps draws into --report or --save-vis; give one of them")
        check_person_size(self.person_size, self.size_filter)
        if not 0 <= self.camera.max_off_nadir <= 180:
            raise SSPNetError(f"--max-off-nadir must be between 0 and 180 degrees, got {self.camera.max_off_nadir:g}")
        if not self.camera.enabled and (self.camera.ground_elevation is not None or self.camera.dem is not None):
            raise SSPNetError("--ground-elevation and --dem are for the camera model; drop them or --no-camera-model")
        if not self.inputs:
            raise SSPNetError("no inputs given")
        if self.resume and self.restart:
            raise SSPNetError("--resume continues the run in OUT.parts/ and --restart discards it: give one of them")
        if self.parts.is_dir() and not self.resume and not self.restart and jobs.finished_records(self.parts):
            n = len(jobs.finished_records(self.parts))
            raise SSPNetError(
                f"{self.parts} holds {n} finished work unit(s) of an earlier run: pass --resume to continue it, "
                "or --restart to discard it"
            )

    # -- running --------------------------------------------------------------------------
    def run(self, progress: Optional[DetectProgress] = None) -> DetectSummary:
        """Detect on every input and write the output (see the module docstring)."""
        progress = progress or DetectProgress()
        if self.parts.is_dir() and not self.resume:
            jobs.remove_parts(self.parts)  # --restart, or an earlier run that finished nothing
        ground = open_ground(self.camera.ground_elevation, self.camera.dem) if self.camera.enabled else None
        ctx = setup(self.device)
        try:
            return self._run(ctx, ground, progress)
        finally:
            ctx.close()
            if ground is not None:
                ground.close()

    def _run(self, ctx: DistContext, ground: Optional[Dem], progress: DetectProgress) -> DetectSummary:
        summary = DetectSummary(self.out, is_main=ctx.is_main)
        expanded = expand_inputs(self.inputs, self.recursive)
        summary.skipped = list(expanded.problems)
        if ctx.is_main:
            for item, problem in expanded.problems:
                progress.say(f"skipped {item}: {problem}")
        if not expanded.paths:
            raise SSPNetError("no images to process")
        detector = Detector(self.weights, device=str(ctx.device) if ctx.distributed else self.device, options=self.options, backend=self.backend)
        if self.options.heatmaps and not getattr(detector.model.neck, "has_attention", False):
            summary.notes.append("--heatmaps: this model's FPN neck has no attention maps; none are drawn")
            detector = detector.with_options(heatmaps=False)
        summary.runtime = detector.runtime
        recall_table = self.recall_table or detector.meta.get("recall_by_size")
        if self.coverage_path is not None and not recall_table:
            raise SSPNetError(
                "--coverage needs the model's recall by person size, which this checkpoint does not record "
                "(best.pt of a run with a validation split does); `sspnet eval` prints it, and Python can pass it (recall_table=...)"
            )
        infos = ctx.broadcast_object([jobs.probe(p) for p in expanded.paths] if ctx.is_main else None)
        units = jobs.plan_units(infos, detector.options.tile, detector.options.overlap)  # type: ignore[arg-type]
        share = jobs.assign(units, ctx.world_size)[ctx.rank]
        stats = RunStats()
        if ctx.distributed or self.resume or self.keep_parts:
            results, failures = self._run_with_parts(ctx, detector, infos, units, share, stats, summary, progress)  # type: ignore[arg-type]
        else:
            results, failures = self._run_in_memory(detector, infos, units, stats, progress)  # type: ignore[arg-type]
        summary.stats = _gather_stats(ctx, stats)
        if not ctx.is_main:
            return summary
        summary.failures = failures
        if not results:
            if self.parts.is_dir() and not jobs.finished_records(self.parts):
                jobs.remove_parts(self.parts)  # it holds nothing a rerun could reuse
            first = failures[0] if failures else None
            why = f" ({first.image}: {first.problem}{f'; {len(failures) - 1} more failed' if len(failures) > 1 else ''})" if first else ""
            raise SSPNetError(f"no image could be processed{why}; nothing written")
        if self.camera.enabled:
            results = apply_camera_models(results, self.camera.ground_elevation, ground, self.camera.max_off_nadir)
        results, summary.size_check = apply_size_filter(results, self.person_size, self.size_filter)
        summary.results = results
        if self.coverage_path is not None:
            summary.coverage = coverage_of(results, recall_table)  # type: ignore[arg-type]
            write_coverage(self.coverage_path, summary.coverage)
            if summary.coverage.without_footprint:
                summary.notes.append(f"{len(summary.coverage.without_footprint)} frame(s) have no ground footprint and are not in {self.coverage_path.name}")
        meta = self.meta(detector)
        for folder in self.new_folders:
            summary.notes.append(f"created the folder {folder}")
        for out in self.outs:
            write_results(out, results, meta)
            summary.notes += _output_notes(out, results)
        summary.written = self.out
        summary.outputs = list(self.outs)
        if self.save_vis is not None:
            save_overlays(self.save_vis, results)
        if self.report_dir is not None:
            bands = summary.coverage.bands if summary.coverage is not None else ()
            summary.report = write_report(
                self.report_dir, results, {**meta, "results": str(self.out), "seconds": summary.seconds, "device": str(detector.device)},
                self.report_thr, self.report_max, heatmaps=self.options.heatmaps,  # asked: the page says when there are none
                failures=[(f.image, f.problem) for f in summary.failures + [Failure(i, p) for i, p in summary.skipped]],
                coverage_bands=bands,
            )
            summary.notes += summary.report.warnings
        if self.parts.is_dir():
            if self.keep_parts:
                summary.parts = self.parts
            else:
                jobs.remove_parts(self.parts)
        return summary

    def meta(self, detector: Detector) -> dict[str, Any]:
        """What the output files record about the run: the weights (file name and sha256, which
        tells two files of the same name apart) and the options."""
        from sspnet_cli.model.backbones import sha256_of

        weights = detector.weights
        return {
            "weights": weights.name if weights else None,
            "weights_sha256": sha256_of(weights) if weights else None,
            "options": detector.options.to_dict(),
        }

    def _run_in_memory(
        self, detector: Detector, infos: list[jobs.InputInfo], units: list[jobs.PlannedUnit], stats: RunStats, progress: DetectProgress
    ) -> tuple[list[ImageResult], list[Failure]]:
        if progress.on_units:
            progress.on_units(len(units), 0)
        if progress.on_planned_tiles:
            progress.on_planned_tiles(jobs.planned_tiles(infos, units, detector.options.tile, detector.options.overlap))  # type: ignore[arg-type]
        pieces: dict[int, list[UnitResult]] = {}
        failed: dict[int, str] = {}
        work = (jobs.work_unit(k, infos, u) for k, u in enumerate(units))
        for unit, result in zip(units, detector.run_units(work, on_tiles=progress.on_tiles, on_frame=progress.on_frame, stats=stats)):
            if isinstance(result, Failure):
                failed.setdefault(unit.input_index, result.problem)
            else:
                pieces.setdefault(unit.input_index, []).append(result)
            if progress.on_unit:
                progress.on_unit()
        results: list[ImageResult] = []
        failures: list[Failure] = []
        for i, info in enumerate(infos):
            if i in failed:
                failures.append(Failure(info.path, failed[i]))
            else:
                results.append(detector.merge(pieces[i]))
        return results, failures

    def _run_with_parts(
        self,
        ctx: DistContext,
        detector: Detector,
        infos: list[jobs.InputInfo],
        units: list[jobs.PlannedUnit],
        share: list[int],
        stats: RunStats,
        summary: DetectSummary,
        progress: DetectProgress,
    ) -> tuple[list[ImageResult], list[Failure]]:
        problem = None
        if ctx.is_main:
            try:
                jobs.check_or_write_manifest(self.parts, {**jobs.manifest_for(detector), **self.camera.to_dict()}, self.resume)
            except SSPNetError as exc:
                problem = str(exc)
        problem = ctx.broadcast_object(problem)
        if problem:
            raise SSPNetError(str(problem))
        done: set[str] = set()
        if self.resume:
            records = jobs.read_records(self.parts)
            done = {u.uid for u in units if u.uid in records and jobs.is_current(records[u.uid], infos[u.input_index])}
            summary.resumed_units = len(done)
            if ctx.is_main and done:
                progress.say(f"resuming: {len(done)} of {len(units)} work units already done")
        if progress.on_units and ctx.is_main:
            progress.on_units(len(units), len(done))
        if progress.on_planned_tiles:  # this process's share
            mine = [units[k] for k in share if units[k].uid not in done]
            progress.on_planned_tiles(jobs.planned_tiles(infos, mine, detector.options.tile, detector.options.overlap))  # type: ignore[arg-type]
        writer = jobs.PartWriter(self.parts, ctx.rank)
        stop = threading.Event()
        poller = None
        if ctx.distributed and ctx.is_main and progress.on_units_done:
            def poll() -> None:  # the other processes report through their part files
                while not stop.wait(1.0):
                    progress.on_units_done(len(jobs.read_records(self.parts)))  # type: ignore[misc]

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
        try:
            jobs.run_share(
                detector, infos, units, share, writer, done, stats,
                on_tiles=progress.on_tiles, on_frame=progress.on_frame,
                on_unit=None if ctx.distributed else progress.on_unit,
            )
        finally:
            stop.set()
            writer.close()
        try:
            ctx.barrier()
        except RuntimeError as exc:
            raise SSPNetError(f"a process of this job failed ({str(exc).splitlines()[0][:100]}); nothing was written") from None
        if not ctx.is_main:
            return [], []
        if progress.on_units_done:
            progress.on_units_done(len(jobs.read_records(self.parts)))
        results: list[ImageResult] = []
        failures: list[Failure] = []
        for item in jobs.gather(detector, infos, units, self.parts):
            (failures if isinstance(item, Failure) else results).append(item)  # type: ignore[arg-type]
        return results, failures


def detect(
    inputs: Union[PathLike, Sequence[PathLike]],
    out: Union[PathLike, Sequence[PathLike]],
    *,
    weights: Optional[PathLike] = None,
    device: str = "auto",
    backend: str = "auto",
    tile: tuple[int, int] = (640, 512),
    overlap: int = 30,
    score_thr: float = 0.3,
    nms_iou: float = 0.5,
    batch_size: Optional[int] = None,
    lanes: Optional[int] = None,
    half: bool = False,
    precision: str = "auto",
    scales: Optional[Sequence[float]] = None,
    flip: Optional[bool] = None,
    bands: Optional[Sequence[int]] = None,
    heatmaps: bool = False,
    recursive: bool = False,
    save_vis: Optional[PathLike] = None,
    report: Optional[PathLike] = None,
    report_thr: float = DEFAULT_REPORT_THR,
    report_max: int = DEFAULT_REPORT_MAX,
    camera_model: bool = True,
    ground_elevation: Optional[float] = None,
    dem: Optional[PathLike] = None,
    max_off_nadir: float = MAX_OFF_NADIR,
    person_size: Sequence[float] = PERSON_SIZE_M,
    size_filter: str = "flag",
    coverage: Optional[PathLike] = None,
    recall_table: Optional[Sequence[dict[str, float]]] = None,
    resume: bool = False,
    restart: bool = False,
    keep_parts: bool = False,
    progress: Optional[DetectProgress] = None,
) -> DetectSummary:
    """Find people in ``inputs`` (files, folders, glob patterns) and write ``out`` (one file or
    several: ``.geojson``, ``.csv``, ``.json``, ``.gpx``, ``.kml``): what ``sspnet detect`` does, option for option (its ``--help``
    explains each), returning a :class:`DetectSummary`. Raises :class:`SSPNetError` (one line)
    for bad options or when no image could be processed."""
    options = DetectOptions(
        tile=tuple(tile), overlap=overlap, score_thr=score_thr, nms_iou=nms_iou, batch_size=batch_size, lanes=lanes, half=half, precision=precision,  # type: ignore[arg-type]
        scales=tuple(float(s) for s in scales) if scales is not None else None, flip=flip, bands=tuple(bands) if bands else None,
        heatmaps=heatmaps,
    )
    job = DetectJob(
        inputs, out, weights=weights, device=device, backend=backend, options=options, recursive=recursive, save_vis=save_vis,
        report=report, report_thr=report_thr, report_max=report_max,
        camera=CameraSettings(camera_model, ground_elevation, str(dem) if dem is not None else None, max_off_nadir),
        person_size=person_size, size_filter=size_filter, coverage=coverage, recall_table=recall_table, resume=resume, restart=restart, keep_parts=keep_parts,
    )
    return job.run(progress)


def _output_notes(out: Path, results: Sequence[ImageResult]) -> list[str]:
    """What a user should know about one output: pixel-only GeoJSON, detections a waypoint
    file cannot hold."""
    suffix = out.suffix.lower()
    if suffix == ".geojson" and coordinates_kind(results) == "pixel":
        return [
            "no input carries a map position (not georeferenced, no usable camera metadata): the GeoJSON's "
            "geometries are null and each box is in pixel_bbox; CSV or COCO JSON (.csv, .json) suit pixel work"
        ]
    if suffix in (".gpx", ".kml"):
        missing, images = unplaced(results)
        if missing:
            named = ", ".join(Path(i).name for i in images[:5]) + (f" and {len(images) - 5} more" if len(images) > 5 else "")
            return [f"{missing} detection(s) without a map position are not in {out.name} (in {named}); the other outputs list them"]
    return []


def leftover_parts(out: PathLike, discard_unfinished: bool = False) -> tuple[Path, int]:
    """The part folder of ``out`` and how many finished work units it holds (0 when there is
    none); with ``discard_unfinished`` a folder without finished work is removed."""
    parts = jobs.parts_dir_for(out)
    finished = len(jobs.finished_records(parts)) if parts.is_dir() else 0
    if discard_unfinished and parts.is_dir() and not finished:
        jobs.remove_parts(parts)
    return parts, finished


def _gather_stats(ctx: DistContext, stats: RunStats) -> list[RunStats]:
    if not ctx.initialised:
        return [stats]
    import torch.distributed as dist

    box: list = [None] * ctx.world_size
    dist.all_gather_object(box, stats)
    return box


def save_overlays(folder: Path, results: Sequence[ImageResult]) -> None:
    """Each result's image with its boxes drawn (and its attention maps, where it has them)
    into ``folder``, one JPEG per image; names made unique by a counter."""
    folder.mkdir(parents=True, exist_ok=True)
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
            if result.attention:
                save_heatmaps(folder, Path(name).stem, source, result.attention)
