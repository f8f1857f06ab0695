"""Detection crops for the review list: the person with context around it, the box drawn.

A crop is a square around the box's centre, :data:`CONTEXT` times the box's longer side but at
least :data:`MIN_CONTEXT_PX` frame pixels, read with :meth:`ImageSource.read` (a window read of
a raster, never the whole frame; parts outside the frame are black). It is resampled to
:data:`CROP_PX` square, so every entry on the page has the same size, and the box is drawn just
outside the person's pixels so the outline never hides them.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.imagery.sources import ImageSource
from sspnet_cli.outputs.overlay import BOX_COLOUR
from sspnet_cli.types import Window

CONTEXT = 4.0
MIN_CONTEXT_PX = 96
CROP_PX = 192
JPEG_QUALITY = 85


def crop_window(box: tuple[float, float, float, float], context: float = CONTEXT, min_side: int = MIN_CONTEXT_PX) -> Window:
    """The square frame window of a crop around ``box`` (x1, y1, x2, y2 in frame pixels); it may
    reach past the frame's edges."""
    x1, y1, x2, y2 = box
    side = max(int(min_side), math.ceil(context * max(x2 - x1, y2 - y1, 0.0)))
    left = math.floor((x1 + x2) / 2 - side / 2)
    top = math.floor((y1 + y2) / 2 - side / 2)
    return Window(left, top, side, side)


def render_crop(source: ImageSource, box: tuple[float, float, float, float], size: int = CROP_PX) -> np.ndarray:
    """The crop of ``box`` from ``source`` as ``size x size`` RGB ``uint8``, box drawn."""
    window = crop_window(box)
    rgb, _ = source.read(window)
    scale = size / window.width
    # cubic when enlarging (tiny people fill a few pixels), area when shrinking (no aliasing)
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    out = cv2.resize(rgb, (size, size), interpolation=interpolation)
    x1, y1, x2, y2 = box
    thickness = 2 if size >= 160 else 1
    pad = thickness + 1
    corner1 = (math.floor((x1 - window.x) * scale) - pad, math.floor((y1 - window.y) * scale) - pad)
    corner2 = (math.ceil((x2 - window.x) * scale) + pad - 1, math.ceil((y2 - window.y) * scale) + pad - 1)
    cv2.rectangle(out, corner1, corner2, BOX_COLOUR, thickness, lineType=cv2.LINE_8)
    return out


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """``rgb`` as JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SSPNetError("could not encode a JPEG image")
    return data.tobytes()
