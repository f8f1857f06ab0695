"""Training patches: which windows of a frame to train on, and the targets inside each.

The reference rule (SSPNet's official data preparation): a person goes into a patch when at
least 70 % of its side survives the crop, ``sqrt(clipped area / area) >= 0.7``; it is then
clipped to the window and shifted to patch coordinates. A person cut more than that becomes an
ignore region of the patch (clipped) instead of vanishing, so that the half-visible person is
neither a positive nor a negative there. Ignore regions are clipped into the patch too. Windows
come from :func:`sspnet_cli.imagery.tiling.window_grid`, the grid detection uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from sspnet_cli.data.sample import AnnotatedImage, as_boxes
from sspnet_cli.imagery.tiling import window_grid
from sspnet_cli.types import Window

MIN_VISIBLE = 0.7


@dataclass(eq=False)
class PatchTargets:
    """Targets of one window, in patch pixels (the window's top-left corner is 0, 0).

    ``boxes`` (K, 4) float32 are the people kept, ``box_index`` (K,) their rows in the image's
    ``boxes``; ``ignore_boxes`` (L, 4) float32 are the image's ignore regions and the people cut
    below the threshold, clipped to the window.
    """

    window: Window
    boxes: np.ndarray
    box_index: np.ndarray
    ignore_boxes: np.ndarray


class PatchRef(NamedTuple):
    """A training patch: the image's index in its dataset and the window cut from it."""

    image_index: int
    window: Window


def clip_boxes(boxes: np.ndarray, window: Window) -> np.ndarray:
    """``boxes`` (N, 4) xyxy clipped to ``window``, in frame coordinates (empty boxes stay, with
    zero width or height)."""
    x0, y0 = window.x, window.y
    x1, y1 = x0 + window.width, y0 + window.height
    out = as_boxes(boxes).copy()
    np.clip(out[:, 0::2], x0, x1, out=out[:, 0::2])
    np.clip(out[:, 1::2], y0, y1, out=out[:, 1::2])
    return out


def visible_fraction(boxes: np.ndarray, window: Window) -> np.ndarray:
    """Share of each box's side inside ``window``: ``sqrt(clipped area / area)``, in [0, 1]
    (float64, so that a box exactly at the threshold is not lost to rounding)."""
    boxes = as_boxes(boxes).astype(np.float64)
    clipped = clip_boxes(boxes, window).astype(np.float64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    return np.sqrt(np.divide(inside, area, out=np.zeros_like(area), where=area > 0))


def patch_targets(image: AnnotatedImage, window: Window, min_visible: float = MIN_VISIBLE) -> PatchTargets:
    """The people and ignore regions of ``image`` inside ``window``, by the 70 % rule."""
    visible = visible_fraction(image.boxes, window)
    keep = visible >= min_visible
    cut = (visible > 0) & ~keep
    shift = np.array([window.x, window.y, window.x, window.y], dtype=np.float32)
    clipped = clip_boxes(image.boxes, window)
    regions = clip_boxes(image.ignore_boxes, window)
    regions = regions[(regions[:, 2] > regions[:, 0]) & (regions[:, 3] > regions[:, 1])]
    return PatchTargets(
        window=window,
        boxes=clipped[keep] - shift,
        box_index=np.flatnonzero(keep),
        ignore_boxes=np.concatenate([regions, clipped[cut]]) - shift,
    )


def training_patches(
    images: Sequence[AnnotatedImage],
    tile: tuple[int, int] = (640, 512),
    overlap: int = 30,
    skip_empty: bool = True,
    min_visible: float = MIN_VISIBLE,
) -> list[PatchRef]:
    """Every window of every image (a :class:`~sspnet_cli.data.sample.Dataset` or a list of
    images), image by image in grid order. With ``skip_empty`` (the reference's choice) windows
    where no person passes the 70 % rule are left out."""
    refs: list[PatchRef] = []
    for index, image in enumerate(images):
        for window in window_grid(image.width, image.height, tile, overlap):
            if not skip_empty or bool((visible_fraction(image.boxes, window) >= min_visible).any()):
                refs.append(PatchRef(index, window))
    return refs
