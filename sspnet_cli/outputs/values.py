"""The numbers writers emit: detections as numpy arrays, rounded to a fixed precision.

Precision (the same results always give the same bytes): pixel coordinates to 0.01 px, lon/lat
to 1e-8 degree (about 1 mm), scores to 1e-4, camera altitudes and angles and position errors to
0.01. Rounding goes through :func:`round` and negative zero is folded into zero; JSON writes the
shortest repr of the rounded value, CSV a fixed number of decimals. Non-finite values are written
as null / empty.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from sspnet_cli.types import ImageResult, Positions

PIXEL_DECIMALS = 2
LONLAT_DECIMALS = 8
SCORE_DECIMALS = 4
CAMERA_DECIMALS = 2
ERROR_DECIMALS = 2

#: label id -> name written in outputs
LABEL_NAMES = {1: "person"}

#: camera keys copied into outputs, with their precision
CAMERA_KEYS = {
    "lon": LONLAT_DECIMALS,
    "lat": LONLAT_DECIMALS,
    "altitude": CAMERA_DECIMALS,
    "relative_altitude": CAMERA_DECIMALS,
    "gimbal_yaw": CAMERA_DECIMALS,
    "gimbal_pitch": CAMERA_DECIMALS,
    "gimbal_roll": CAMERA_DECIMALS,
    "flight_yaw": CAMERA_DECIMALS,
    # set by the camera model (sspnet_cli.geo.camera.apply_camera_model)
    "focal_length_px": CAMERA_DECIMALS,
    "height_above_ground": CAMERA_DECIMALS,
}


def label_name(label: int) -> str:
    """Output name of a label id (``1`` -> ``"person"``)."""
    return LABEL_NAMES.get(int(label), f"class_{int(label)}")


def rounded(value: Any, decimals: int) -> Optional[float]:
    """``value`` rounded to ``decimals`` as a Python float (never ``-0.0``), or None if not finite."""
    v = float(value)
    if not math.isfinite(v):
        return None
    return round(v, decimals) + 0.0


def fixed(value: Any, decimals: int) -> str:
    """``value`` with exactly ``decimals`` decimals (``""`` if not finite), for CSV."""
    v = rounded(value, decimals)
    return "" if v is None else f"{v:.{decimals}f}"


def detection_arrays(result: ImageResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (N, 4) float64, scores (N,) float64, labels (N,) int64)`` of a result, on CPU."""
    det = result.detections
    boxes = det.boxes.detach().cpu().double().numpy().reshape(-1, 4)
    scores = det.scores.detach().cpu().double().numpy().reshape(-1)
    labels = det.labels.detach().cpu().long().numpy().reshape(-1)
    return boxes, scores, labels


def camera_position(camera: Optional[dict[str, Any]]) -> Optional[dict[str, Optional[float]]]:
    """The rounded camera keys of :data:`CAMERA_KEYS` present in ``camera``, in that order; None
    unless it has both lon and lat."""
    if not camera or camera.get("lon") is None or camera.get("lat") is None:
        return None
    out: dict[str, Optional[float]] = {}
    for key, decimals in CAMERA_KEYS.items():
        if key in camera:
            out[key] = None if camera[key] is None else rounded(camera[key], decimals)
    return out


def plain_json(value: Any) -> Any:
    """A JSON-safe copy of run metadata: dict keys sorted (as strings), tuples as lists,
    non-finite floats as None, anything else unknown as its ``str``."""
    if isinstance(value, dict):
        return {str(k): plain_json(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


SIZE_DECIMALS = 2


def size_properties(positions: Positions, i: int) -> dict[str, Any]:
    """``ground_size_m`` [w, h] (metres) of detection ``i`` where known, and ``size_plausible``
    where the size filter judged it."""
    out: dict[str, Any] = {}
    if positions.sizes_m is not None:
        w, h = (float(v) for v in positions.sizes_m[i])
        if math.isfinite(w) and math.isfinite(h):
            out["ground_size_m"] = [rounded(w, SIZE_DECIMALS), rounded(h, SIZE_DECIMALS)]
            if positions.plausible is not None:
                out["size_plausible"] = bool(positions.plausible[i])
    return out
