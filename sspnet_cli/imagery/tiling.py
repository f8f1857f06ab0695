"""The window grid: where tiles (and training patches) are cut from a frame.

A pure function of the frame size, like SAHI's ``get_slice_bboxes``: windows of ``tile`` size
stepping by ``tile - overlap``, the last row and column shifted inward so every window is full
size. Frames smaller than a tile along an axis get one window at 0 of the full tile size, which
reaches past the frame: the reader pads it (never stretches).
"""
from __future__ import annotations

from sspnet_cli.errors import SSPNetError
from sspnet_cli.types import Window


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis, e.g. ``axis_starts(1920, 640, 30) == [0, 610, 1220, 1280]``."""
    if tile <= 0:
        raise SSPNetError(f"tile size must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise SSPNetError(f"overlap must be in [0, {tile}) for a {tile} px tile, got {overlap}")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def window_grid(width: int, height: int, tile: tuple[int, int] = (640, 512), overlap: int = 30) -> list[Window]:
    """Windows covering a ``width`` x ``height`` frame, row by row (``tile`` is width, height)."""
    tw, th = tile
    return [
        Window(x, y, tw, th)
        for y in axis_starts(height, th, overlap)
        for x in axis_starts(width, tw, overlap)
    ]
