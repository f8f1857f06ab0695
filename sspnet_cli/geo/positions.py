"""Where detections are on the map: the one place writers and the review report ask.

``positions_of(result)`` gives, per detection, a closed counter-clockwise lon/lat ring and the
box centre's lon/lat, with ``source`` saying where they come from: ``"raster"`` (the raster's
own georeferencing), ``"camera"`` (a drone photo's camera model, set on the result by
:mod:`sspnet_cli.geo.camera` under ``result.extra["ground"]``) or ``"pixel"`` (no position; the
reason says why).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sspnet_cli.geo.transform import box_centers_lonlat, box_rings_lonlat
from sspnet_cli.types import ImageResult


@dataclass
class Positions:
    source: str  # "raster" | "camera" | "pixel"
    rings: Optional[np.ndarray] = None  # (N, 5, 2) lon/lat, closed, counter-clockwise
    centres: Optional[np.ndarray] = None  # (N, 2) lon/lat of the box centres
    error_m: Optional[np.ndarray] = None  # (N,) horizontal error estimate in metres, where known
    reason: Optional[str] = None  # why there is no position (source "pixel")


def positions_of(result: ImageResult) -> Positions:
    """Map positions of ``result``'s detections (see the module docstring)."""
    if result.georef is not None:
        boxes = result.detections.boxes.numpy().astype(np.float64).reshape(-1, 4)
        return Positions("raster", box_rings_lonlat(result.georef, boxes), box_centers_lonlat(result.georef, boxes))
    ground = result.extra.get("ground")
    if isinstance(ground, Positions):
        return ground
    return Positions("pixel", reason="not georeferenced")
