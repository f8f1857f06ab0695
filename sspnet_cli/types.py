"""Data that flows between stages: windows, georeferencing and detections.

Pixel coordinates everywhere follow GDAL's corner convention: (0, 0) is the top-left corner of
the top-left pixel and pixel (i, j) covers [j, j+1) x [i, i+1). A raster's affine transform maps
them to map coordinates directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import torch


class Window(NamedTuple):
    """A rectangle of a frame in pixels: column/row offset of the top-left corner and size."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class GeoRef:
    """Georeferencing of a raster: its CRS (WKT) and the GDAL affine transform (a, b, c, d, e, f).

    Map coordinates of pixel corner (col, row): ``x = a*col + b*row + c``, ``y = d*col + e*row + f``.
    """

    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]


@dataclass
class Detections:
    """Boxes found in one frame (or one tile), as tensors.

    ``boxes`` is (N, 4) float32 ``x1, y1, x2, y2`` in frame pixels, ``scores`` (N,) float32,
    ``labels`` (N,) int64 (1 = person).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> "Detections":
        return Detections(
            torch.zeros((0, 4), dtype=torch.float32, device=device),
            torch.zeros((0,), dtype=torch.float32, device=device),
            torch.zeros((0,), dtype=torch.int64, device=device),
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> "Detections":
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device))

    def select(self, index: torch.Tensor) -> "Detections":
        """Detections at ``index`` (a boolean mask or integer indices), in that order."""
        return Detections(self.boxes[index], self.scores[index], self.labels[index])


@dataclass
class Positions:
    """Where one frame's detections are on the map (``sspnet_cli.geo.positions.positions_of``
    answers it for any result). ``source``: ``"raster"`` (the raster's georeferencing),
    ``"camera"`` (a drone photo's camera model) or ``"pixel"`` (no position; ``reason`` says
    why). A camera model can place some detections of a photo and not others: their rows of
    ``rings``, ``centres`` and ``error_m`` are NaN and ``reasons`` says why, per detection."""

    source: str  # "raster" | "camera" | "pixel"
    rings: Optional[np.ndarray] = None  # (N, 5, 2) lon/lat, closed, counter-clockwise
    centres: Optional[np.ndarray] = None  # (N, 2) lon/lat of the box centres
    error_m: Optional[np.ndarray] = None  # (N,) horizontal error estimate in metres, where known
    reason: Optional[str] = None  # why there is no position (source "pixel")
    # source "camera": per detection, why it has no position (None where it has one)
    reasons: Optional[Sequence[Optional[str]]] = None
    note: Optional[str] = None  # a caveat on every position of the image (e.g. a cropped photo)
    # source "camera": the whole frame's outline on the ground (closed lon/lat ring), where every
    # corner ray meets it
    footprint: Optional[np.ndarray] = None
    # (N, 2) metres on the ground along the box's width and height (NaN where unknown)
    sizes_m: Optional[np.ndarray] = None
    # (N,) bool: whether each box's ground size is a person's (set by the size filter)
    plausible: Optional[np.ndarray] = None
    # "oblique" when the camera looked further from straight down than --max-off-nadir
    quality: Optional[str] = None

    def select(self, keep: np.ndarray) -> "Positions":
        """These positions for the detections where ``keep`` (bool, one per detection) is true."""
        import dataclasses

        def pick(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if a is None else np.asarray(a)[keep]

        reasons = None if self.reasons is None else [r for r, k in zip(self.reasons, keep) if k]
        return dataclasses.replace(
            self, rings=pick(self.rings), centres=pick(self.centres), error_m=pick(self.error_m), reasons=reasons,
            sizes_m=pick(self.sizes_m), plausible=pick(self.plausible),
        )

    def located(self, n: int) -> np.ndarray:
        """``(n,)`` bool: which of the image's ``n`` detections have a map position (a finite
        centre)."""
        if self.source == "pixel" or self.centres is None:
            return np.zeros(n, dtype=bool)
        centres = np.asarray(self.centres, dtype=np.float64).reshape(-1, 2)
        if len(centres) != n:
            raise ValueError(f"positions of {len(centres)} detections asked about {n}")
        return np.isfinite(centres).all(axis=1)

    def reason_for(self, index: int) -> Optional[str]:
        """Why detection ``index`` has no map position, or None when it has one."""
        if self.source == "pixel":
            return self.reason or "no map position"
        if self.reasons is not None and self.reasons[index] is not None:
            return self.reasons[index]
        if self.centres is not None and not np.isfinite(np.asarray(self.centres)[index]).all():
            return self.reason or "no map position"
        return None


@dataclass
class ImageResult:
    """Everything the writers need about one processed frame; they know nothing of the model.

    ``image`` is the path (or name) as the user gave it; ``georef`` is set for georeferenced
    rasters; ``camera`` holds drone-photo metadata (EXIF GPS and friends) when the file has it;
    ``ground`` the detections' map positions from a camera model (or read back from a results
    file); ``attention`` the SSPNet attention maps by level name (``"P2"``...) when asked for;
    ``warnings`` notes for the user about this frame (an ignored EXIF rotation, unusable
    georeferencing).
    """

    image: str
    width: int
    height: int
    detections: Detections
    georef: Optional[GeoRef] = None
    camera: Optional[dict[str, Any]] = None
    ground: Optional[Positions] = None
    attention: Optional[dict[str, np.ndarray]] = None
    warnings: list[str] = field(default_factory=list)
