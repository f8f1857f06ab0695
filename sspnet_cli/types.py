"""Data that flows between stages: windows, georeferencing and detections.

Pixel coordinates everywhere follow GDAL's corner convention: (0, 0) is the top-left corner of
the top-left pixel and pixel (i, j) covers [j, j+1) x [i, i+1). A raster's affine transform maps
them to map coordinates directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

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
class ImageResult:
    """Everything the writers need about one processed frame; they know nothing of the model.

    ``image`` is the path (or name) as the user gave it; ``georef`` is set for georeferenced
    rasters; ``camera`` holds drone-photo metadata (EXIF GPS and friends) when the file has it.
    """

    image: str
    width: int
    height: int
    detections: Detections
    georef: Optional[GeoRef] = None
    camera: Optional[dict[str, Any]] = None
    extra: dict[str, Any] = field(default_factory=dict)
