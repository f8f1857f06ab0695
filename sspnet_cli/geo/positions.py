"""Where detections are on the map: the one place writers and the review report ask.

``positions_of(result)`` gives, per detection, a closed counter-clockwise lon/lat ring and the
box centre's lon/lat, with ``source`` saying where they come from: ``"raster"`` (the raster's
own georeferencing), ``"camera"`` (a drone photo's camera model, set on the result by
:func:`sspnet_cli.geo.camera.apply_camera_model` as ``result.ground``) or
``"pixel"`` (no position; ``reason`` says why).

A camera model can place some detections of a photo and not others (a box reaching above the
horizon, beyond the DEM): their rows of ``rings``, ``centres`` and ``error_m`` are NaN and
``reasons`` says why, one entry per detection. :meth:`Positions.located` and
:meth:`Positions.reason_for` answer per detection whatever the source.
"""
from __future__ import annotations

import numpy as np

from sspnet_cli.geo.transform import box_centers_lonlat, box_ground_sizes, box_rings_lonlat
from sspnet_cli.types import ImageResult, Positions

__all__ = ["Positions", "positions_of"]


def positions_of(result: ImageResult) -> Positions:
    """Map positions of ``result``'s detections (see the module docstring)."""
    if result.ground is not None:  # a camera model's, or a raster's kept with its size check
        return result.ground
    if result.georef is not None:
        boxes = result.detections.boxes.detach().cpu().numpy().astype(np.float64).reshape(-1, 4)
        return Positions(
            "raster", box_rings_lonlat(result.georef, boxes), box_centers_lonlat(result.georef, boxes),
            sizes_m=box_ground_sizes(result.georef, boxes),
        )
    if result.camera is not None:
        return Positions("pixel", reason="not georeferenced; the camera model was not applied")
    return Positions("pixel", reason="not georeferenced")
