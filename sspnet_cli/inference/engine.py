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
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np
import torch
from torch import nn

from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.inference.background import background
from sspnet_cli.inference.merge import merge_frame, tile_to_frame
from sspnet_cli.inference.sources import ImageSource, array_source, open_source
from sspnet_cli.inference.tiling import window_grid
from sspnet_cli.inference.weights import resolve_weights
from sspnet_cli.model.checkpoint import load_model
from sspnet_cli.types import ImageResult, Window

# Measured on a 2-core CPU: batching tiles makes CPU inference slower, so CPUs take one tile per
# forward; on CUDA a batch keeps the GPU busy (benchmarks/bench_detect.py).
CPU_BATCH = 1
CUDA_BATCH = 8


@dataclass(frozen=True)
class DetectOptions:
    """How frames are tiled, detected and merged (``sspnet detect --help`` documents each)."""

    tile: tuple[int, int] = (640, 512)  # width, height
    overlap: int = 30
    score_thr: float = 0.3
    nms_iou: float = 0.5
    batch_size: Optional[int] = None  # None: CPU_BATCH on the CPU, CUDA_BATCH on CUDA
    half: bool = False
    scales: tuple[float, ...] = (1.0,)
    bands: Optional[tuple[int, ...]] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tile": f"{self.tile[0]}x{self.tile[1]}",
            "overlap": self.overlap,
            "score_thr": self.score_thr,
            "nms_iou": self.nms_iou,
            "half": self.half,
            "scales": list(self.scales),
            "bands": list(self.bands) if self.bands else None,
        }


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


@dataclass
class _Frame:
    index: int
    name: str
    source: ImageSource
    windows: list[Window]
    remaining: int
    bands_done: bool = False
    parts: list = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise SSPNetError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SSPNetError(f"device {device} asked for, but no CUDA GPU is available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SSPNetError(f"device {device} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    elif dev.type != "cpu":
        raise SSPNetError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")
    return dev


class Detector:
    """Detect people in frames of any size: ``Detector(weights).detect("frame.jpg")``.

    ``weights`` is a checkpoint path (default: the model shipped in ``weights/``). The detector
    changes nothing outside itself and returns its results; the CLI is a thin layer over it.
    """

    def __init__(self, weights: Union[str, Path, None] = None, device: str = "auto", **options: Any) -> None:
        self.device = resolve_device(device)
        self.weights = resolve_weights(weights)
        model, self.meta = load_model(self.weights, self.device)
        self._setup(model, DetectOptions(**options))

    @classmethod
    def from_model(cls, model: nn.Module, device: str = "cpu", meta: Optional[dict] = None, **options: Any) -> "Detector":
        """Wrap an in-memory model (anything with ``predict(batch, scales)``), e.g. a model being trained."""
        self = cls.__new__(cls)
        self.device = resolve_device(device)
        self.weights = None
        self.meta = dict(meta or {})
        self._setup(model.to(self.device).eval(), DetectOptions(**options))
        return self

    def _setup(self, model: nn.Module, options: DetectOptions) -> None:
        if options.half and self.device.type != "cuda":
            raise SSPNetError("--half needs a CUDA device (fp16 autocast); on the CPU leave it off")
        if options.batch_size is not None and options.batch_size < 1:
            raise SSPNetError("batch size must be at least 1")
        if any(s <= 0 for s in options.scales):
            raise SSPNetError("scales must be positive")
        self.model = model
        self.options = options
        self.batch_size = options.batch_size or (CUDA_BATCH if self.device.type == "cuda" else CPU_BATCH)

    def with_options(self, **options: Any) -> "Detector":
        """A detector sharing this one's model with some options changed."""
        other = Detector.__new__(Detector)
        other.device, other.weights, other.meta = self.device, self.weights, self.meta
        other._setup(self.model, replace(self.options, **options))
        return other

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
        start = time.perf_counter()
        frames: dict[int, _Frame] = {}
        finished: dict[int, Union[ImageResult, Failure]] = {}
        next_out = 0
        pending: list[tuple[int, int, torch.Tensor, Optional[torch.Tensor]]] = []
        reader = background(self._read(inputs), depth=3)
        try:
            for item in reader:
                kind = item[0]
                if kind == "frame":
                    _, idx, name, source, windows = item
                    frames[idx] = _Frame(idx, name, source, windows, remaining=len(windows))
                    if on_frame is not None:
                        on_frame(name, len(windows))
                elif kind == "failed":
                    _, idx, name, problem = item
                    if idx in frames:
                        self._close(frames.pop(idx))
                        pending = [p for p in pending if p[0] != idx]
                    finished[idx] = Failure(name, problem)
                elif kind == "band":
                    _, idx, y, rgb, valid = item
                    frame = frames.get(idx)
                    if frame is not None:
                        skipped = self._cut_tiles(frame, y, rgb, valid, pending)
                        self._count_done(frame, skipped, on_tiles)
                elif kind == "bands_done":
                    frame = frames.get(item[1])
                    if frame is not None:
                        frame.bands_done = True
                while len(pending) >= self.batch_size:
                    self._run_batch(pending[: self.batch_size], frames, on_tiles)
                    del pending[: self.batch_size]
                self._finish_frames(frames, finished, stats)
                next_out = yield from self._emit(finished, next_out, stats)
            while pending:
                self._run_batch(pending[: self.batch_size], frames, on_tiles)
                del pending[: self.batch_size]
            self._finish_frames(frames, finished, stats)
            next_out = yield from self._emit(finished, next_out, stats)
        finally:
            reader.close()
            for frame in frames.values():
                self._close(frame)
            stats.seconds += time.perf_counter() - start

    # -- reading (background thread) ------------------------------------------------------
    def _read(self, inputs: Iterable[Union[str, Path, np.ndarray]]) -> Iterator[tuple]:
        tw, th = self.options.tile
        for idx, item in enumerate(inputs):
            name = "<array>" if isinstance(item, np.ndarray) else str(item)
            try:
                source = array_source(item) if isinstance(item, np.ndarray) else open_source(item, self.options.bands)
            except SSPNetError as exc:
                yield ("failed", idx, name, getattr(exc, "problem", str(exc)))
                continue
            windows = window_grid(source.width, source.height, self.options.tile, self.options.overlap)
            yield ("frame", idx, name, source, windows)
            band_width = max(source.width, tw)
            try:
                for y in sorted({w.y for w in windows}):
                    rgb, valid = source.read(Window(0, y, band_width, th))
                    yield ("band", idx, y, rgb, valid)
            except (SSPNetError, OSError, RuntimeError) as exc:
                problem = getattr(exc, "problem", None) or f"read failed ({str(exc).splitlines()[0][:120]})"
                yield ("failed", idx, name, problem)
                continue
            yield ("bands_done", idx)

    # -- tiles and batches ----------------------------------------------------------------
    def _cut_tiles(self, frame: _Frame, y: int, rgb: np.ndarray, valid: Optional[np.ndarray], pending: list) -> int:
        """Upload a band once and queue views of its tiles; returns the number of tiles skipped
        because every pixel in them is invalid."""
        band = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)  # (3, th, width), a view
        band_valid = None if valid is None else torch.from_numpy(valid).to(self.device)
        tw, th = self.options.tile
        skipped = 0
        for i, w in enumerate(frame.windows):
            if w.y != y:
                continue
            tile_valid = None if band_valid is None else band_valid[:, w.x : w.x + tw]
            if tile_valid is not None and not bool(tile_valid.any()):
                skipped += 1
                continue
            pending.append((frame.index, i, band[:, :, w.x : w.x + tw], tile_valid))
        return skipped

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.options.half:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def _run_batch(self, batch: list, frames: dict[int, _Frame], on_tiles: Optional[Callable[[int], None]]) -> None:
        tensor = torch.stack([t[2] for t in batch])
        with self._autocast():
            dets, _ = self.model.predict(tensor, scales=self.options.scales)
        for (idx, win_idx, _, valid), det in zip(batch, dets):
            frame = frames.get(idx)
            if frame is None:
                continue
            framed, cut = tile_to_frame(det, frame.windows[win_idx], (frame.source.width, frame.source.height), valid)
            frame.parts.append((framed, cut, win_idx))
            self._count_done(frame, 1, on_tiles)

    @staticmethod
    def _count_done(frame: _Frame, n: int, on_tiles: Optional[Callable[[int], None]]) -> None:
        if n:
            frame.remaining -= n
            if on_tiles is not None:
                on_tiles(n)

    def _finish_frames(self, frames: dict[int, _Frame], finished: dict, stats: RunStats) -> None:
        for idx in [i for i, f in frames.items() if f.bands_done and f.remaining == 0]:
            frame = frames.pop(idx)
            merged = merge_frame(frame.parts, frame.windows, self.options.nms_iou, self.options.score_thr)
            src = frame.source
            finished[idx] = ImageResult(
                image=frame.name,
                width=src.width,
                height=src.height,
                detections=merged.to("cpu"),
                georef=src.georef,
                camera=src.camera,
                extra={"warnings": list(getattr(src, "warnings", []))} if getattr(src, "warnings", None) else {},
            )
            stats.tiles += len(frame.windows)
            stats.megapixels += src.width * src.height / 1e6
            self._close(frame)

    @staticmethod
    def _emit(finished: dict, next_out: int, stats: RunStats) -> Iterator[Union[ImageResult, Failure]]:
        while next_out in finished:
            result = finished.pop(next_out)
            if isinstance(result, Failure):
                stats.failed += 1
            else:
                stats.images += 1
                stats.detections += len(result.detections)
            yield result
            next_out += 1
        return next_out

    @staticmethod
    def _close(frame: _Frame) -> None:
        with contextlib.suppress(Exception):
            frame.source.close()

