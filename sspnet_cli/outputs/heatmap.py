"""SSPNet attention heatmaps: the scale-selection maps blended over the frame, as PNG.

The engine leaves, per frame, ``result.attention``: a mapping ``{"P2": map, ...,
"P5": map}`` of float arrays in [0, 1], each at its pyramid level's resolution and covering the
whole frame (tiles stitched). An FPN model has no attention, so the key is absent.

Each level is resized bilinearly to the picture's size (the frame itself, or its overview of at
most ``max_side`` px for huge rasters, as overlays are) and blended over it with a colour map.
The **combined** map is the per-pixel **maximum** over the levels: a person is selected by the
level that matches their size, so the maximum shows every place some level attends to, whereas a
mean would dim each place by the number of levels that (rightly) ignore it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Mapping, Optional, Union

import cv2
import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.imagery.sources import ImageSource
from sspnet_cli.outputs.overlay import DEFAULT_MAX_SIDE, save_image

#: name of the combined map among the returned layers and files
COMBINED = "combined"
#: weight of the colour map in the blend (the rest is the image)
BLEND_ALPHA = 0.5
COLOUR_MAP = cv2.COLORMAP_TURBO

AttentionMaps = Mapping[str, np.ndarray]


def _level_order(name: str) -> tuple[int, str]:
    digits = re.findall(r"\d+", name)
    return (int(digits[-1]) if digits else 1 << 30, name)


def iter_heat_layers(maps: AttentionMaps, width: int, height: int) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, heat)`` for each level of ``maps`` resized to ``height x width`` (float32,
    clipped to [0, 1], NaN as 0), in level order (P2 before P10), then :data:`COMBINED`, their
    per-pixel maximum. One level is resized at a time, so a 4096 px overview of many levels
    holds two full-size maps at most."""
    if not maps:
        raise SSPNetError("no attention maps to draw")
    if width < 1 or height < 1:
        raise SSPNetError(f"heatmap size must be positive, got {width}x{height}")
    combined: Optional[np.ndarray] = None
    for name in sorted(maps, key=lambda n: _level_order(str(n))):
        level = np.squeeze(np.asarray(maps[name], dtype=np.float32))
        if level.ndim != 2 or level.size == 0:
            raise SSPNetError(f"attention map {name!r} must be a 2-D array, got shape {np.shape(maps[name])}")
        level = np.nan_to_num(level, nan=0.0, posinf=1.0, neginf=0.0)
        heat = np.clip(cv2.resize(level, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width), 0.0, 1.0)
        yield str(name), heat
        combined = heat.copy() if combined is None else np.maximum(combined, heat, out=combined)
    assert combined is not None
    yield COMBINED, combined


def heat_layers(maps: AttentionMaps, width: int, height: int) -> dict[str, np.ndarray]:
    """All of :func:`iter_heat_layers` at once: ``{level...: heat, "combined": heat}``."""
    return dict(iter_heat_layers(maps, width, height))


def blend_heat(rgb: np.ndarray, heat: np.ndarray, alpha: float = BLEND_ALPHA) -> np.ndarray:
    """``heat`` (H x W in [0, 1], same size as ``rgb``) coloured with the turbo map (blue low,
    red high) and blended over the ``uint8`` RGB image: a new ``uint8`` H x W x 3 array."""
    if heat.shape != rgb.shape[:2]:
        raise SSPNetError(f"heatmap shape {heat.shape} does not match the image {rgb.shape[:2]}")
    levels = np.round(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(levels, COLOUR_MAP), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(rgb, 1.0 - alpha, colour, alpha, 0.0)


def heatmap_images(rgb: np.ndarray, maps: AttentionMaps) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, picture)``: every level and the combined map blended over ``rgb`` (the frame or
    its overview), one at a time."""
    h, w = rgb.shape[:2]
    for name, heat in iter_heat_layers(maps, w, h):
        yield name, blend_heat(rgb, heat)


def heatmap_names(stem: str, maps: AttentionMaps) -> dict[str, str]:
    """File names :func:`save_heatmaps` gives: ``{stem}_attention_{level}.png`` per level (in
    level order) and ``{stem}_attention_combined.png``."""
    levels = sorted((str(n) for n in maps), key=_level_order)
    return {name: f"{stem}_attention_{name}.png" for name in [*levels, COMBINED]}


def save_heatmaps(
    folder: Union[str, Path],
    stem: str,
    image: Union[ImageSource, np.ndarray],
    maps: AttentionMaps,
    max_side: int = DEFAULT_MAX_SIDE,
) -> dict[str, Path]:
    """Write the blended heatmaps of ``maps`` over ``image`` into ``folder`` as PNG (atomically),
    named as :func:`heatmap_names` says; returns ``{level or "combined": path}``.

    ``image`` is an open :class:`ImageSource` (read down-scaled to at most ``max_side`` px on its
    longest side, like overlays) or an RGB ``uint8`` array already at the size wanted.
    """
    if isinstance(image, ImageSource):
        rgb, _ = image.read_overview(max_side)
    else:
        rgb = np.asarray(image)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise SSPNetError("the image under a heatmap must be uint8 H x W x 3 RGB")
    folder = Path(folder)
    names = heatmap_names(stem, maps)
    paths: dict[str, Path] = {}
    for name, picture in heatmap_images(rgb, maps):
        path = folder / names[name]
        save_image(path, picture)
        paths[name] = path
    return paths
