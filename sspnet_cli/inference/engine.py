"""Tiled, batched detection over whole frames: the engine under ``sspnet detect`` and ``eval``.

Per frame: the window grid (640x512, 30 px overlap, the last row/column shifted inward) is read
band by band of tile rows (a raster is never read whole, so memory grows with its width, not its
area); each band is uploaded to the device once and its tiles are cut from it as views; tiles
from consecutive rows and frames are stacked into batches for the model; the per-tile
detections are merged per frame (see merge.py). A background thread opens and decodes the next
frame and reads the next bands while the model works on the current batch.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from torch import nn

from sspnet_cli.config import model_test_flip, model_test_scales
from sspnet_cli.distributed import resolve_device
from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.inference.background import background
from sspnet_cli.inference.merge import merge_frame, tile_to_frame
from sspnet_cli.imagery.sources import ImageSource, array_source, open_source, resized_source
from sspnet_cli.geo.transform import check_source_georef
from sspnet_cli.imagery.tiling import window_grid
from sspnet_cli.inference.weights import resolve_weights
from sspnet_cli.inference.heap import return_large_buffers
from sspnet_cli.model.checkpoint import load_model
from sspnet_cli.model.fold import fold_batchnorm
from sspnet_cli.types import Detections, ImageResult, Window

# Measured on a 2-core CPU: batching tiles makes CPU inference slower, so CPUs take one tile per
# forward; on CUDA a batch keeps the GPU busy (benchmarks/bench_detect.py).
CPU_BATCH = 1
CUDA_BATCH = 8
#: items the reader thread may have ready ahead of the model: each item queued keeps a piece of a
#: tile row alive (READ_PIECE_PX); one ahead already overlaps all reading with the model (the
#: next photo is decoded, or the next piece read, while this one's tiles run)
READ_AHEAD = 1
#: the widest piece of a tile row read at once (whole tiles; wider frames are read in pieces):
#: a 20,000 px wide row is 31 MB of pixels and about as much again while it is decoded, and
#: every piece read ahead keeps one alive, so pieces keep a wide raster's reads small
READ_PIECE_PX = 4096


def auto_lanes(device: torch.device, backend: str) -> int:
    """Tiles in flight at once. On the CPU with onnxruntime: one per pair of cores' worth of torch
    threads, at least two where there are two cores, each lane's sessions with an equal share of
    the threads. Half of a tile's time is small single-threaded steps (proposal filtering, RoI
    pooling, soft-NMS) during which a 2-thread model leaves a core idle; two 1-thread lanes keep
    both busy (benchmarks/README.md, "Two tiles at once"). Elsewhere one."""
    if device.type != "cpu" or backend != "onnxruntime":
        return 1
    return 2 if torch.get_num_threads() >= 2 else 1


def _lane_threads(lanes: int) -> int:
    """Each lane's share of torch's threads (OMP_NUM_THREADS; 1 per process under torchrun)."""
    return max(1, torch.get_num_threads() // lanes)


@dataclass(frozen=True)
class DetectOptions:
    """How frames are tiled, detected and merged (``sspnet detect --help`` documents each)."""

    tile: tuple[int, int] = (640, 512)  # width, height
    overlap: int = 30
    score_thr: float = 0.3
    nms_iou: float = 0.5
    batch_size: Optional[int] = None  # None: CPU_BATCH on the CPU, CUDA_BATCH on CUDA
    half: bool = False
    # None: the model's own (its checkpoint's ``test_scales``; 1 where it records none)
    scales: Optional[tuple[float, ...]] = None
    # also run each scale mirrored left to right and average (None: the checkpoint's ``test_flip``)
    flip: Optional[bool] = None
    bands: Optional[tuple[int, ...]] = None
    heatmaps: bool = False  # also return the SSPNet attention maps, stitched per frame
    # resize every frame to (width, height) before tiling; results come back in the frame's own
    # pixels. For dataset frames stored squeezed (TinyPerson-RF: 16:9 frames at 640x640)
    frame_size: Optional[tuple[int, int]] = None
    #: tiles in flight at once (None: :func:`auto_lanes`); more than one needs the onnxruntime backend
    lanes: Optional[int] = None
    #: the dense graph's arithmetic: fp32, int8 (onnxruntime on the CPU; quantize.py) or auto
    #: (int8 where :func:`choose_precision` finds it pays); a detector records what it chose
    precision: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "tile": f"{self.tile[0]}x{self.tile[1]}",
            "overlap": self.overlap,
            "score_thr": self.score_thr,
            "nms_iou": self.nms_iou,
            "half": self.half,
            "scales": list(self.scales) if self.scales is not None else "model",
            "flip": self.flip if self.flip is not None else "model",
            "bands": list(self.bands) if self.bands else None,
            "precision": self.precision,
        }
        if self.frame_size:
            out["frame_size"] = f"{self.frame_size[0]}x{self.frame_size[1]}"
        return out


@dataclass
class Failure:
    """An input that could not be processed, and why (one line)."""

    image: str
    problem: str


@dataclass
class RunStats:
    """Counts for the end-of-run summary."""

    images: int = 0
    failed: int = 0
    tiles: int = 0
    detections: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0

    @property
    def megapixels_per_second(self) -> float:
        return self.megapixels / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class WorkUnit:
    """A piece of a detection job: the tile rows ``rows`` = [start, stop) of one image's window
    grid (all rows when None). Results come out in ``index`` order."""

    index: int
    image: Union[str, Path, np.ndarray]
    rows: Optional[tuple[int, int]] = None


@dataclass
class UnitResult:
    """What a unit produced: the frame's description and, per tile of the unit (window order),
    its detections in frame pixels with the flags merging needs. Tensors are on the CPU."""

    unit: WorkUnit
    name: str
    width: int
    height: int
    windows: list[Window]
    parts: list[tuple[Detections, torch.Tensor, int]]
    georef: Optional[Any] = None
    camera: Optional[dict] = None
    warnings: list[str] = field(default_factory=list)
    attention: Optional[dict[str, np.ndarray]] = None  # level -> frame-sized map (this unit's rows filled)
    tiles: int = 0
    #: the stored frame's size when it was resized for detection (DetectOptions.frame_size):
    #: ``width``/``height``, the windows and the parts are then in resized pixels
    original_size: Optional[tuple[int, int]] = None


@dataclass
class _Unit:
    unit: WorkUnit
    name: str
    source: ImageSource
    windows: list[Window]  # the whole frame's grid
    mine: list[int]  # indices of the windows this unit covers
    remaining: int
    bands_done: bool = False
    parts: list = field(default_factory=list)
    attention: Optional[dict[str, np.ndarray]] = None
    original_size: Optional[tuple[int, int]] = None


def _read_problem(exc: BaseException) -> str:
    """One line for a frame whose pixels could not be read."""
    return getattr(exc, "problem", None) or f"read failed ({str(exc).splitlines()[0][:120]})"


def row_pieces(row: list[int], windows: list[Window], tile_width: int, read_width: Optional[int] = None) -> list[list[int]]:
    """The windows of one tile row (``row``: their numbers, left to right) in pieces read at
    once: whole tiles, each piece at most :data:`READ_PIECE_PX` wide (at least one tile), or
    ``read_width`` where the source reads that much anyway (a striped raster decodes whole rows)."""
    limit = max(READ_PIECE_PX, read_width or 0)
    pieces: list[list[int]] = []
    for i in row:
        if pieces and windows[i].x + tile_width - windows[pieces[-1][0]].x <= limit:
            pieces[-1].append(i)
        else:
            pieces.append([i])
    return pieces


def unit_rows(windows: list[Window]) -> list[int]:
    """The distinct tile-row offsets (y) of a window grid, top to bottom."""
    return sorted({w.y for w in windows})


def merge_pieces(pieces: Sequence[UnitResult], nms_iou: float, score_thr: float) -> ImageResult:
    """One frame's result from the units that covered it (one, or several bands): every tile's
    detections, in window order, through :func:`merge_frame`; attention maps stitched by
    per-pixel maximum."""
    first = pieces[0]
    parts = sorted((p for piece in pieces for p in piece.parts), key=lambda p: p[2])
    merged = merge_frame(parts, first.windows, nms_iou, score_thr)
    maps = [piece.attention for piece in pieces if piece.attention]
    attention = {k: np.maximum.reduce([m[k] for m in maps]) for k in maps[0]} if maps else None
    width, height = first.width, first.height
    if first.original_size is not None and first.original_size != (width, height):
        width, height = first.original_size
        sx, sy = width / first.width, height / first.height
        merged = Detections(merged.boxes * merged.boxes.new_tensor([sx, sy, sx, sy]), merged.scores, merged.labels)
        if attention is not None:
            attention = {k: cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for k, m in attention.items()}
    return ImageResult(
        image=first.name, width=width, height=height, detections=merged,
        georef=first.georef, camera=first.camera, attention=attention, warnings=list(first.warnings),
    )


BACKENDS = ("auto", "torch", "onnxruntime")
#: ``auto`` runs a checkpoint on the CPU in onnxruntime where onnxruntime and onnx are installed:
#: the same detections, as fast as torch on a quiet AVX2 CPU and up to twice as fast in loaded runs on
#: a 2-core Xeon (benchmarks/README.md). The
#: export is made once per checkpoint and kept in :func:`onnx_cache_dir`. False: auto means torch.
AUTO_ONNX_ON_CPU = True


def onnxruntime_usable() -> bool:
    """Whether onnxruntime (to run) and onnx (for torch's exporter) can be imported."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def onnx_cache_dir() -> Path:
    """Where exports of checkpoints for ``--backend onnxruntime`` are kept, one folder per
    checkpoint sha256: ``$SSPNET_CACHE``, else ``$XDG_CACHE_HOME/sspnet`` or ``~/.cache/sspnet``."""
    root = os.environ.get("SSPNET_CACHE") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sspnet")
    return Path(root) / "onnx"


def choose_backend(backend: str, weights: Path, device: torch.device) -> str:
    """The backend a detector runs on (see :class:`Detector`); one-line errors for impossible asks."""
    if backend not in BACKENDS:
        raise SSPNetError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    is_onnx = weights.suffix.lower() == ".onnx"
    if backend == "auto":
        on_cpu = AUTO_ONNX_ON_CPU and device.type == "cpu" and onnxruntime_usable()
        backend = "onnxruntime" if is_onnx or on_cpu else "torch"
    if backend == "torch" and is_onnx:
        raise SSPNetError(f"{weights}: an ONNX export runs on --backend onnxruntime; give the .pt checkpoint for torch")
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise SSPNetError("--backend onnxruntime runs on the CPU here; use --device cpu (or the torch backend on CUDA)")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise SSPNetError("--backend onnxruntime needs the onnxruntime package: pip install onnxruntime") from None
    return backend


def choose_precision(precision: str, backend: str, weights: Path) -> str:
    """``fp32`` or ``int8``: what a detector runs for the asked ``precision`` (see
    :class:`DetectOptions`); one-line errors for impossible asks. ``auto`` is int8 with the
    onnxruntime backend on a CPU with int8 dot-product units (VNNI, AMX) where calibration tiles
    are installed, about twice as fast end to end with the shipped model's AP50-tiny kept
    (benchmarks/README.md, "int8"); fp32 elsewhere. An ONNX export runs at its own precision."""
    from sspnet_cli.inference import quantize

    if precision not in quantize.PRECISIONS:
        raise SSPNetError(f"unknown precision {precision!r}; choose one of {', '.join(quantize.PRECISIONS)}")
    if backend != "onnxruntime":
        if precision == "int8":
            raise SSPNetError("--precision int8 runs on the onnxruntime backend on the CPU (pip install onnxruntime onnx; --backend onnxruntime)")
        return "fp32"
    if weights.suffix.lower() == ".onnx":
        from sspnet_cli.inference.onnx import export_precision, read_sidecar

        own = export_precision(read_sidecar(weights))
        if precision not in ("auto", own):
            raise SSPNetError(f"{weights} is an {own} export; export it again with{'' if precision == 'int8' else 'out'} --int8, or give the .pt checkpoint")
        return own
    if precision == "auto":
        return "int8" if quantize.calibration_installed() and quantize.cpu_has_int8_dot() else "fp32"
    return precision


def _onnx_model(weights: Path, threads: int, precision: str = "fp32") -> tuple[nn.Module, dict]:
    """The onnxruntime model of ``weights`` with sessions of ``threads`` threads: an export, or a
    checkpoint's export at ``precision`` from the cache (:func:`onnx_cache_dir`), made there now if
    missing; where the cache cannot be written, into a temporary folder (which onnxruntime no
    longer needs once its sessions are open). An int8 export's folder is named by the checkpoint
    and the calibration tiles both."""
    from sspnet_cli.inference.onnx import OnnxSSPNet, export_onnx, read_sidecar
    from sspnet_cli.model.backbones import sha256_of

    if weights.suffix.lower() == ".onnx":
        model = OnnxSSPNet(weights, threads)
        return model, dict(model.sidecar["checkpoint"].get("meta") or {})
    digest = sha256_of(weights)
    name = digest[:32]
    if precision == "int8":
        from sspnet_cli.inference.quantize import calibration_digest, calibration_images

        name += f"-int8-{calibration_digest(calibration_images())}"
    cached = onnx_cache_dir() / name / "model.onnx"
    try:
        if read_sidecar(cached.with_suffix(".json"))["checkpoint"]["sha256"] == digest:
            model = OnnxSSPNet(cached, threads)
            return model, dict(model.sidecar["checkpoint"].get("meta") or {})
    except (SSPNetError, OSError, KeyError, TypeError):
        pass
    import shutil
    import tempfile

    try:
        cached.parent.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=cached.parent.parent))
    except OSError:
        with tempfile.TemporaryDirectory(prefix="sspnet-onnx-") as tmp:
            export_onnx(weights, Path(tmp) / "model.onnx", precision=precision)
            model = OnnxSSPNet(Path(tmp) / "model.onnx", threads)
        return model, dict(model.sidecar["checkpoint"].get("meta") or {})
    try:
        export_onnx(weights, staging / "model.onnx", precision=precision)
        try:
            shutil.rmtree(cached.parent, ignore_errors=True)  # a stale or damaged export
            os.replace(staging, cached.parent)  # whole, or not at all (another process may win)
        except OSError:
            pass
        where = cached if cached.is_file() else staging / "model.onnx"
        model = OnnxSSPNet(where, threads)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model, dict(model.sidecar["checkpoint"].get("meta") or {})


class Detector:
    """Detect people in frames of any size: ``Detector(weights).detect("frame.jpg")``.

    ``weights`` is a checkpoint path (default: the model shipped in ``weights/``). The detector
    changes nothing outside itself and returns its results; the CLI is a thin layer over it.
    """

    def __init__(
        self,
        weights: Union[str, Path, None] = None,
        device: str = "auto",
        options: Optional[DetectOptions] = None,
        backend: str = "auto",
        **settings: Any,
    ) -> None:
        """``options`` (a :class:`DetectOptions`) or its fields as keywords (``score_thr=0.3``).
        ``backend``: ``torch``, ``onnxruntime`` (the dense part and the R-CNN head in
        onnxruntime, on the CPU: ``weights`` an export of ``sspnet export``, or a checkpoint
        exported for this run) or ``auto`` (onnxruntime for ``.onnx`` weights, else torch)."""
        return_large_buffers()  # before onnxruntime starts threads of its own (heap.py)
        self.device = resolve_device(device)
        self.weights = resolve_weights(weights)
        self.backend = choose_backend(backend, self.weights, self.device)
        options = replace(options, **settings) if options is not None else DetectOptions(**settings)
        self.precision = choose_precision(options.precision, self.backend, self.weights)
        if self.backend == "onnxruntime":
            lanes = options.lanes or auto_lanes(self.device, "onnxruntime")
            try:
                # lanes of one thread share this model (_make_lanes), so it is made with theirs
                model, self.meta = _onnx_model(self.weights, _lane_threads(max(lanes, 1)), self.precision)
            except SSPNetError:
                if backend != "auto" or self.weights.suffix.lower() == ".onnx" or options.precision == "int8":
                    raise
                self.backend = "torch"  # auto, and this checkpoint does not export (not a Faster R-CNN)
                self.precision = choose_precision(options.precision, self.backend, self.weights)
        if self.backend == "torch":
            model, self.meta = load_model(self.weights, self.device)
            # this copy is never trained or saved; folding saves the BatchNorm pass (benchmarks/README.md)
            fold_batchnorm(model)
        self._setup(model, options)
        self._lanes = self._make_lanes(model)

    def _make_lanes(self, model: nn.Module) -> list[nn.Module]:
        """The models the lanes run: onnxruntime models whose sessions share the threads (one
        model for lanes of one thread each: :meth:`OnnxSSPNet.replica`); torch's one model otherwise."""
        lanes = self.options.lanes or auto_lanes(self.device, self.backend)
        if lanes < 1:
            raise SSPNetError("lanes must be at least 1")
        if lanes == 1:
            if getattr(model, "threads", None) not in (None, _lane_threads(1)):  # fewer lanes than it was made for
                with contextlib.suppress(SSPNetError, OSError):
                    self.model = model = model.replica(_lane_threads(1))
            return [model]
        if self.backend != "onnxruntime":
            raise SSPNetError("more than one lane needs the onnxruntime backend (--backend onnxruntime) on the CPU")
        per_lane = _lane_threads(lanes)
        try:
            first = model if getattr(model, "threads", None) == per_lane else model.replica(per_lane)
            if per_lane == 1:  # one model for all: its runs compute on the lanes' own threads
                replicas = [first] * lanes
            else:
                replicas = [first] + [model.replica(per_lane) for _ in range(lanes - 1)]
        except (SSPNetError, OSError):  # an export in a temporary folder, gone once loaded: one lane
            return [model]
        self.model = replicas[0]  # a model made for other lanes than these is not kept
        return replicas

    @classmethod
    def from_model(cls, model: nn.Module, device: str = "cpu", meta: Optional[dict] = None, **options: Any) -> "Detector":
        """Wrap an in-memory model (anything with ``predict(batch, scales)``), e.g. a model being trained."""
        self = cls.__new__(cls)
        self.device = resolve_device(device)
        self.weights = None
        self.backend = "torch"
        self.meta = dict(meta or {})
        self.precision = choose_precision(options.pop("precision", "auto"), "torch", Path("in-memory"))
        self._setup(model.to(self.device).eval(), DetectOptions(**options))
        self._lanes = self._make_lanes(self.model)
        return self

    def _setup(self, model: nn.Module, options: DetectOptions) -> None:
        if options.half and self.device.type != "cuda":
            raise SSPNetError("--half needs a CUDA device (fp16 autocast); on the CPU leave it off")
        if options.batch_size is not None and options.batch_size < 1:
            raise SSPNetError("batch size must be at least 1")
        if options.scales is None:
            options = replace(options, scales=model_test_scales(self.meta))
        if options.flip is None:
            options = replace(options, flip=model_test_flip(self.meta))
        if not options.scales or any(s <= 0 for s in options.scales):
            raise SSPNetError("scales must be positive")
        if options.precision not in ("auto", self.precision):
            raise SSPNetError(f"this detector's model runs in {self.precision}; make a new Detector for precision {options.precision}")
        options = replace(options, precision=self.precision)
        self.model = model
        self.options = options
        self.batch_size = options.batch_size or (CUDA_BATCH if self.device.type == "cuda" else CPU_BATCH)

    def with_options(self, **options: Any) -> "Detector":
        """A detector sharing this one's model with some options changed."""
        other = Detector.__new__(Detector)
        other.device, other.weights, other.meta, other.backend = self.device, self.weights, self.meta, self.backend
        other.precision = self.precision
        other._setup(self.model, replace(self.options, **options))
        lanes = other.options.lanes or auto_lanes(other.device, other.backend)
        other._lanes = self._lanes if lanes == len(self._lanes) else other._make_lanes(self.model)
        return other

    @property
    def runtime(self) -> str:
        """How the model runs, for a run's printout: backend, precision, lanes."""
        lanes = len(self._lanes)
        return f"{self.backend}, {self.precision}, {lanes} lane{'s' if lanes > 1 else ''}"

    # -- public API -----------------------------------------------------------------------
    def detect(self, image: Union[str, Path, np.ndarray]) -> ImageResult:
        """Detections in one frame (a path, or an RGB ``uint8`` H x W x 3 array)."""
        for result in self.run([image]):
            if isinstance(result, Failure):
                raise InputError(result.image, result.problem)
            return result
        raise AssertionError("run() yields one result per input")

    def run(
        self,
        inputs: Iterable[Union[str, Path, np.ndarray]],
        on_tiles: Optional[Callable[[int], None]] = None,
        on_frame: Optional[Callable[[str, int], None]] = None,
        stats: Optional[RunStats] = None,
    ) -> Iterator[Union[ImageResult, Failure]]:
        """Results for ``inputs`` in their order, an :class:`ImageResult` or a :class:`Failure`
        each. For progress bars: ``on_frame(name, n_tiles)`` when a frame opens and
        ``on_tiles(n)`` as its tiles finish."""
        stats = stats if stats is not None else RunStats()
        units = (WorkUnit(i, item) for i, item in enumerate(inputs))
        for out in self.run_units(units, on_tiles=on_tiles, on_frame=on_frame, stats=stats):
            if isinstance(out, Failure):
                yield out
                continue
            result = self.merge([out])
            stats.images += 1
            stats.detections += len(result.detections)
            yield result

    def merge(self, pieces: Sequence[UnitResult]) -> ImageResult:
        """One frame's result from the units that covered it: :func:`merge_pieces` with this
        detector's NMS IoU and score threshold."""
        return merge_pieces(pieces, self.options.nms_iou, self.options.score_thr)

    def run_units(
        self,
        units: Iterable[WorkUnit],
        on_tiles: Optional[Callable[[int], None]] = None,
        on_frame: Optional[Callable[[str, int], None]] = None,
        stats: Optional[RunStats] = None,
    ) -> Iterator[Union[UnitResult, Failure]]:
        """Per-tile detections of each unit, in the order the units are given (a
        :class:`Failure` for a unit whose image cannot be read). Batches span units."""
        stats = stats if stats is not None else RunStats()
        return_large_buffers()  # freed bands go back to the system (heap.py)
        start = time.perf_counter()
        active: dict[int, _Unit] = {}
        finished: dict[int, Union[UnitResult, Failure]] = {}
        next_out = 0
        pending: list[tuple[int, int, torch.Tensor, Optional[torch.Tensor]]] = []
        reader = background(self._read(units), depth=READ_AHEAD)
        lanes = _Lanes(self._lanes, self._predict, lambda batch, out: self._place(batch, out, active, on_tiles))
        try:
            for item in reader:
                kind, seq = item[0], item[1]
                if kind == "unit":
                    _, _, unit, name, source, windows, mine, original_size = item
                    active[seq] = _Unit(unit, name, source, windows, mine, remaining=len(mine), original_size=original_size)
                    if on_frame is not None:
                        on_frame(name, len(mine))
                elif kind == "failed":
                    _, _, unit, name, problem = item
                    if seq in active:
                        self._close(active.pop(seq))
                        pending = [p for p in pending if p[0] != seq]
                    finished[seq] = Failure(name, problem)
                    stats.failed += 1
                elif kind == "band":
                    _, _, x0, piece, rgb, valid = item
                    state = active.get(seq)
                    if state is not None:
                        self._count_done(state, self._cut_tiles(seq, state, x0, piece, rgb, valid, pending), on_tiles)
                elif kind == "bands_done" and seq in active:
                    active[seq].bands_done = True
                while len(pending) >= self.batch_size:
                    lanes.submit(pending[: self.batch_size])
                    del pending[: self.batch_size]
                lanes.poll()
                self._finish_units(active, finished, stats)
                next_out = yield from self._emit(finished, next_out)
            while pending:
                lanes.submit(pending[: self.batch_size])
                del pending[: self.batch_size]
            lanes.drain(0)
            self._finish_units(active, finished, stats)
            next_out = yield from self._emit(finished, next_out)
        finally:
            lanes.close()
            reader.close()
            for state in active.values():
                self._close(state)
            stats.seconds += time.perf_counter() - start

    # -- reading (background thread) ------------------------------------------------------
    def _read(self, units: Iterable[WorkUnit]) -> Iterator[tuple]:
        tw, th = self.options.tile
        for seq, unit in enumerate(units):
            item = unit.image
            name = "<array>" if isinstance(item, np.ndarray) else str(item)
            try:
                source = array_source(item) if isinstance(item, np.ndarray) else check_source_georef(open_source(item, self.options.bands))
            except SSPNetError as exc:
                yield ("failed", seq, unit, name, getattr(exc, "problem", str(exc)))
                continue
            original_size = None
            if self.options.frame_size is not None:
                original_size = (source.width, source.height)
                original = source
                try:
                    source = resized_source(source, *self.options.frame_size)
                    # results are mapped back to the stored frame's pixels, which these describe
                    source.georef, source.camera, source.warnings = original.georef, original.camera, original.warnings
                except (SSPNetError, OSError, RuntimeError) as exc:
                    yield ("failed", seq, unit, name, _read_problem(exc))
                    continue
            windows = window_grid(source.width, source.height, self.options.tile, self.options.overlap)
            ys = unit_rows(windows)
            if unit.rows is not None:
                ys = ys[unit.rows[0] : unit.rows[1]]
            wanted = set(ys)
            mine = [i for i, w in enumerate(windows) if w.y in wanted]
            yield ("unit", seq, unit, name, source, windows, mine, original_size)
            try:
                for y in ys:
                    for piece in row_pieces([i for i in mine if windows[i].y == y], windows, tw, source.read_width):
                        x0 = windows[piece[0]].x
                        rgb, valid = source.read(Window(x0, y, windows[piece[-1]].x + tw - x0, th))
                        yield ("band", seq, x0, piece, rgb, valid)
            except (SSPNetError, OSError, RuntimeError) as exc:
                yield ("failed", seq, unit, name, _read_problem(exc))
                continue
            yield ("bands_done", seq)

    # -- tiles and batches ----------------------------------------------------------------
    def _cut_tiles(
        self, seq: int, state: _Unit, x0: int, piece: list[int], rgb: np.ndarray, valid: Optional[np.ndarray], pending: list
    ) -> int:
        """Upload a piece of a tile row (from column ``x0``) once and queue views of its tiles
        (``piece``: their window numbers); returns the number of tiles skipped because every
        pixel in them is invalid."""
        band = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)  # (3, th, width), a view
        band_valid = None if valid is None else torch.from_numpy(valid).to(self.device)
        tw = self.options.tile[0]
        skipped = 0
        for i in piece:
            x = state.windows[i].x - x0
            tile_valid = None if band_valid is None else band_valid[:, x : x + tw]
            if tile_valid is not None and not bool(tile_valid.any()):
                skipped += 1
                continue
            pending.append((seq, i, band[:, :, x : x + tw], tile_valid))
        return skipped

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.options.half:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def _predict(self, model: nn.Module, batch: list) -> tuple[list, list]:
        """One batch through one lane's model (on the lane's thread where there are several)."""
        tensor = torch.stack([t[2] for t in batch])
        with self._autocast():
            # flip only when asked: models given to from_model may predate the keyword
            mirrored = {"flip": True} if self.options.flip else {}
            return model.predict(tensor, scales=self.options.scales, with_attention=self.options.heatmaps, **mirrored)

    def _place(self, batch: list, out: tuple[list, list], active: dict[int, _Unit], on_tiles: Optional[Callable[[int], None]]) -> None:
        """A finished batch's detections into their frames (always on the calling thread)."""
        dets, attention = out
        for k, ((seq, win_idx, _, valid), det) in enumerate(zip(batch, dets)):
            state = active.get(seq)
            if state is None:
                continue
            size = (state.source.width, state.source.height)
            framed, cut = tile_to_frame(det, state.windows[win_idx], size, valid)
            state.parts.append((framed, cut, win_idx))
            if attention:
                self._stitch_attention(state, state.windows[win_idx], [a[k, 0] for a in attention])
            self._count_done(state, 1, on_tiles)

    @staticmethod
    def _stitch_attention(state: _Unit, window: Window, maps: list[torch.Tensor]) -> None:
        """Place one tile's attention maps into frame-sized maps (max where tiles overlap)."""
        W, H = state.source.width, state.source.height
        if state.attention is None:
            state.attention = {}
        for level, m in enumerate(maps):
            stride = 4 * 2**level
            key = f"P{level + 2}"
            canvas = state.attention.setdefault(key, np.zeros((-(-H // stride), -(-W // stride)), np.float32))
            oy, ox = round(window.y / stride), round(window.x / stride)
            h, w = min(m.shape[0], canvas.shape[0] - oy), min(m.shape[1], canvas.shape[1] - ox)
            if h > 0 and w > 0:
                region = canvas[oy : oy + h, ox : ox + w]
                np.maximum(region, m[:h, :w].float().cpu().numpy(), out=region)

    @staticmethod
    def _count_done(state: _Unit, n: int, on_tiles: Optional[Callable[[int], None]]) -> None:
        if n:
            state.remaining -= n
            if on_tiles is not None:
                on_tiles(n)

    def _finish_units(self, active: dict[int, _Unit], finished: dict, stats: RunStats) -> None:
        for seq in [k for k, u in active.items() if u.bands_done and u.remaining == 0]:
            state = active.pop(seq)
            src = state.source
            parts = sorted(((d.to("cpu"), c.to("cpu"), i) for d, c, i in state.parts), key=lambda p: p[2])
            finished[seq] = UnitResult(
                unit=state.unit, name=state.name, width=src.width, height=src.height, windows=state.windows,
                parts=parts, georef=src.georef, camera=src.camera, warnings=list(getattr(src, "warnings", [])),
                attention=state.attention, tiles=len(state.mine), original_size=state.original_size,
            )
            stats.tiles += len(state.mine)
            rows = {state.windows[i].y for i in state.mine}
            if rows:
                covered = min(max(rows) + self.options.tile[1], src.height) - min(rows)
                stats.megapixels += src.width * max(covered, 0) / 1e6
            self._close(state)

    @staticmethod
    def _emit(finished: dict, next_out: int) -> Iterator[Union[UnitResult, Failure]]:
        while next_out in finished:
            yield finished.pop(next_out)
            next_out += 1
        return next_out

    @staticmethod
    def _close(state: _Unit) -> None:
        with contextlib.suppress(Exception):
            state.source.close()


class _Lanes:
    """Batches through one or more models at once: ``submit`` hands a batch to a free lane (on
    one lane, it runs at once, on the calling thread), ``drain(n)`` places finished batches, in
    the order submitted, until at most ``n`` are in flight. Placing stays on the calling thread,
    so the frames' bookkeeping needs no lock."""

    def __init__(self, models: list[nn.Module], predict: Callable[[nn.Module, list], tuple], place: Callable[[list, tuple], None]) -> None:
        self.predict, self.place = predict, place
        self.models = list(models)
        self.inflight: list[tuple[list, Any]] = []
        self.pool = None
        if len(models) > 1:
            import queue
            from concurrent.futures import ThreadPoolExecutor

            self.free: "queue.Queue[nn.Module]" = queue.Queue()
            for m in models:
                self.free.put(m)
            self.pool = ThreadPoolExecutor(len(models), thread_name_prefix="sspnet-lane")

    def _run(self, batch: list) -> tuple:
        model = self.free.get()
        try:
            return self.predict(model, batch)
        finally:
            self.free.put(model)

    def submit(self, batch: list) -> None:
        if self.pool is None:
            self.place(batch, self.predict(self.models[0], batch))
            return
        self.drain(len(self.models) - 1)
        self.inflight.append((batch, self.pool.submit(self._run, batch)))

    def poll(self) -> None:
        """Place the batches already finished, oldest first, without waiting."""
        while self.inflight and self.inflight[0][1].done():
            batch, future = self.inflight.pop(0)
            self.place(batch, future.result())

    def drain(self, limit: int) -> None:
        while len(self.inflight) > limit:
            batch, future = self.inflight.pop(0)
            self.place(batch, future.result())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
