"""Anchors as the reference defines them, and k-means anchors for new data.

torchvision's AnchorGenerator rounds the base anchors to integers and infers each level's stride
from the image and feature sizes (wrong for P6 of a frame whose P5 has an odd size); tiny
anchors (6 px on P2) suffer from rounding. This generator keeps them unrounded, uses the
configured strides, and centres them on (j * stride, i * stride) like the official code.
Order within a location: ratio-major (for each ratio, every scale), as mmdetection.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from sspnet_cli.model.sampling import AnchorGrid


def base_anchors(stride: float, scales: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """(A, 4) anchors centred on 0 for one level: h = stride*scale*sqrt(r), w = stride*scale/sqrt(r)."""
    ratios_t = torch.tensor(ratios, dtype=torch.float64)
    scales_t = torch.tensor(scales, dtype=torch.float64)
    h_ratio = ratios_t.sqrt()
    w_ratio = 1.0 / h_ratio
    ws = (stride * w_ratio[:, None] * scales_t[None, :]).reshape(-1)
    hs = (stride * h_ratio[:, None] * scales_t[None, :]).reshape(-1)
    return torch.stack([-ws / 2, -hs / 2, ws / 2, hs / 2], dim=1).float()


class AnchorGenerator(nn.Module):
    """Anchors for every location of P2..P6, concatenated level by level, (y, x, anchor) order
    within a level (the order of the flattened head outputs)."""

    def __init__(self, scales: Sequence[float], ratios: Sequence[float], strides: Sequence[int]) -> None:
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.ratios = tuple(float(r) for r in ratios)
        self.strides = tuple(int(s) for s in strides)
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.scales) * len(self.ratios)

    def sizes(self) -> list[list[tuple[float, float]]]:
        """(width, height) of each anchor at each level, for ``sspnet info``."""
        return [
            [(float(b[2] - b[0]), float(b[3] - b[1])) for b in base_anchors(s, self.scales, self.ratios)]
            for s in self.strides
        ]

    def grid(self, feature_sizes: Sequence[tuple[int, int]]) -> AnchorGrid:
        """The layout of :meth:`grid_anchors`' output, for the sparse assigner."""
        sizes = tuple((int(h), int(w)) for h, w in feature_sizes)
        base = tuple(base_anchors(s, self.scales, self.ratios) for s in self.strides[: len(sizes)])
        return AnchorGrid(sizes, self.strides[: len(sizes)], base)

    def grid_anchors(self, feature_sizes: Sequence[tuple[int, int]], device: torch.device) -> list[Tensor]:
        """Anchors per level: a list of (h*w*A, 4) tensors."""
        key = (tuple(feature_sizes), str(device))
        if key not in self._cache:
            out = []
            for (h, w), stride in zip(feature_sizes, self.strides):
                base = base_anchors(stride, self.scales, self.ratios).to(device)
                ys = torch.arange(h, device=device, dtype=torch.float32) * stride
                xs = torch.arange(w, device=device, dtype=torch.float32) * stride
                yy, xx = torch.meshgrid(ys, xs, indexing="ij")
                shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)
                out.append((shifts + base[None]).reshape(-1, 4))
            if len(self._cache) > 32:
                self._cache.clear()
            self._cache[key] = out
        return self._cache[key]


def kmeans_anchors(
    widths: np.ndarray, heights: np.ndarray, num_scales: int = 4, num_ratios: int = 3
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Anchor scales (in units of the P2 stride, 4 px) and ratios (h/w) from box sizes.

    As the paper did for TinyPerson: 1-D k-means on log side sqrt(w*h) for the scales and on
    log(h/w) for the ratios (log space, since sizes span an order of magnitude), each after
    leaving out the outer :data:`TRIM` of the boxes at both ends. Scales are
    returned relative to the P2 stride because every level reuses them times its own stride.
    """
    widths = np.asarray(widths, dtype=np.float64)
    heights = np.asarray(heights, dtype=np.float64)
    keep = (widths > 0) & (heights > 0)
    if keep.sum() < max(num_scales, num_ratios):
        raise ValueError("not enough boxes for k-means anchors")
    widths, heights = widths[keep], heights[keep]
    sides = _kmeans_1d(_trim(np.log(np.sqrt(widths * heights)), TRIM), num_scales)
    ratios = _kmeans_1d(_trim(np.log(heights / widths), TRIM), num_ratios)
    scales = tuple(round(float(math.exp(c)) / 4.0, 3) for c in sides)
    return scales, tuple(round(float(math.exp(c)), 3) for c in ratios)


#: share of boxes left out at each end before clustering: a few broken annotations (on
#: TinyPerson-RF 1 % of boxes are flatter than h/w 0.05) would otherwise claim a cluster of their own
TRIM = 0.01


def _trim(values: np.ndarray, share: float) -> np.ndarray:
    """``values`` without the lowest and highest ``share`` (all of them when that leaves too few)."""
    lo, hi = np.quantile(values, [share, 1 - share])
    kept = values[(values >= lo) & (values <= hi)]
    return kept if len(kept) >= 8 else values


def _kmeans_1d(values: np.ndarray, k: int, iters: int = 100) -> list[float]:
    """Lloyd's k-means in one dimension, initialised at quantiles (deterministic)."""
    centres = np.quantile(values, (np.arange(k) + 0.5) / k)
    for _ in range(iters):
        assign = np.abs(values[:, None] - centres[None, :]).argmin(1)
        new = np.array([values[assign == j].mean() if np.any(assign == j) else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return sorted(float(c) for c in centres)
