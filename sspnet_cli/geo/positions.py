"""Where detections are on the map: the one place writers and the review report ask.

``positions_of(result)`` gives, per detection, a closed counter-clockwise lon/lat ring and the
box centre's lon/lat, with ``source`` saying where they come from: ``"raster"`` (the raster's
own georeferencing), ``"camera"`` (a drone photo's camera model, set on the result by
:func:`sspnet_cli.geo.camera.apply_camera_model` under ``result.extra["ground"]``) or
``"pixel"`` (no position; ``reason`` says why).

A camera model can place some detections of a photo and not others (a box reaching above the
horizon, beyond the DEM): their rows of ``rings``, ``centres`` and ``error_m`` are NaN and
``reasons`` says why, one entry per detection. :meth:`Positions.located` and
:meth:`Positions.reason_for` answer per detection whatever the source.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

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
    # source "camera": per detection, why it has no position (None where it has one)
    reasons: Optional[Sequence[Optional[str]]] = None
    note: Optional[str] = None  # a caveat on every position of the image (e.g. a cropped photo)
    # source "camera": the whole frame's outline on the ground (closed lon/lat ring), where every
    # corner ray meets it
    footprint: Optional[np.ndarray] = None

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


def positions_of(result: ImageResult) -> Positions:
    """Map positions of ``result``'s detections (see the module docstring)."""
    if result.georef is not None:
        boxes = result.detections.boxes.detach().cpu().numpy().astype(np.float64).reshape(-1, 4)
        return Positions("raster", box_rings_lonlat(result.georef, boxes), box_centers_lonlat(result.georef, boxes))
    ground = result.extra.get("ground")
    if isinstance(ground, Positions):
        return ground
    if result.camera is not None:
        return Positions("pixel", reason="not georeferenced; the camera model was not applied")
    return Positions("pixel", reason="not georeferenced")
