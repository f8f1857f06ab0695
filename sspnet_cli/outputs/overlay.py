"""Overlay images: detections drawn on the frame, for a quick look.

Huge rasters are never loaded whole: :func:`save_overlay` asks the source for a down-scaled read
(:meth:`ImageSource.read_overview`, a decimated GDAL read for rasters), so memory grows with
``max_side`` (default 4096 px on the longest side), not with the raster, and the boxes are scaled
to match. Boxes that would shrink below a few pixels are drawn at a minimum size around their
centre so that tiny people stay visible on a down-scaled 20,000 px raster.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.imagery.sources import ImageSource
from sspnet_cli.atomic import IMAGE_SUFFIXES, atomic_write
from sspnet_cli.types import Detections

BOX_COLOUR = (255, 0, 255)  # magenta: rare in vegetation, water, rock and snow
DEFAULT_MAX_SIDE = 4096


def draw_boxes(
    rgb: np.ndarray,
    boxes: np.ndarray,
    scores: Optional[np.ndarray] = None,
    scale: tuple[float, float] = (1.0, 1.0),
    colour: tuple[int, int, int] = BOX_COLOUR,
    min_size: int = 8,
) -> np.ndarray:
    """Draw ``(N, 4)`` frame-pixel ``boxes`` (x1, y1, x2, y2) on ``rgb`` in place (after scaling
    by ``scale`` = (sx, sy)), with their scores above them when given; returns ``rgb``."""
    h, w = rgb.shape[:2]
    thickness = max(1, round(max(h, w) / 1500))
    font_scale = 0.4 * thickness
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.array([scale[0], scale[1], scale[0], scale[1]])
    centre = (b[:, :2] + b[:, 2:]) / 2
    half = np.maximum((b[:, 2:] - b[:, :2]) / 2, min_size / 2)
    corners = np.round(np.concatenate([centre - half, centre + half], axis=1)).astype(np.int64)
    for i, (x1, y1, x2, y2) in enumerate(corners.tolist()):
        cv2.rectangle(rgb, (x1, y1), (x2, y2), colour, thickness, lineType=cv2.LINE_AA)
        if scores is not None:
            text = f"{float(scores[i]):.2f}"
            cv2.putText(rgb, text, (x1, max(y1 - 3 * thickness, 10)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thickness, cv2.LINE_AA)
    return rgb


def save_image(path: Union[str, Path], rgb: np.ndarray, quality: int = 90) -> None:
    """Save an RGB ``uint8`` image as JPEG (``quality``) or PNG, chosen by suffix, atomically."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise SSPNetError(f"{path}: overlay images must be {', '.join(IMAGE_SUFFIXES)}")
    ext = ".png" if suffix == ".png" else ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise SSPNetError(f"{path}: could not encode the overlay image")
    with atomic_write(path, "wb") as f:
        f.write(encoded.tobytes())


def overlay_image(source: ImageSource, detections: Detections, max_side: int = DEFAULT_MAX_SIDE, show_scores: bool = True) -> np.ndarray:
    """The frame down-scaled to at most ``max_side`` px on its longest side, boxes drawn."""
    rgb, _ = source.read_overview(max_side)
    h, w = rgb.shape[:2]
    boxes = detections.boxes.detach().cpu().double().numpy()
    scores = detections.scores.detach().cpu().double().numpy() if show_scores else None
    return draw_boxes(rgb, boxes, scores, scale=(w / source.width, h / source.height))


def save_overlay(
    path: Union[str, Path],
    source: ImageSource,
    detections: Detections,
    max_side: int = DEFAULT_MAX_SIDE,
    show_scores: bool = True,
    quality: int = 90,
) -> None:
    """Draw ``detections`` on ``source`` (down-scaled, see :func:`overlay_image`) and save the
    result at ``path`` (``.jpg``/``.jpeg``/``.png``) atomically."""
    save_image(path, overlay_image(source, detections, max_side, show_scores), quality)
