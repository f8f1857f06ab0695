"""Test-time views of a batch: up-sampled (the reference's multi-scale test) and mirrored.

A :class:`View` makes its image from the normalised batch and maps boxes between its own pixels
and the input's, so the detectors' multi-view tests (``_predict_multiscale``) need not know which
views they run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class View:
    """The input up-sampled by ``scale`` and, with ``flip``, mirrored left to right."""

    scale: float = 1.0
    flip: bool = False

    def image(self, normalised: Tensor) -> Tensor:
        """This view of a normalised (B, 3, H, W) batch (before padding)."""
        out = normalised
        if self.scale != 1:
            out = F.interpolate(out, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out.flip(-1) if self.flip else out

    def to_input(self, boxes: Tensor, view_width: int) -> Tensor:
        """Boxes (..., 4) xyxy in the pixels of a view ``view_width`` wide -> input pixels."""
        return (_mirror(boxes, view_width) if self.flip else boxes) / self.scale

    def to_view(self, boxes: Tensor, view_width: int) -> Tensor:
        """Boxes (..., 4) xyxy in input pixels -> the pixels of a view ``view_width`` wide."""
        scaled = boxes * self.scale
        return _mirror(scaled, view_width) if self.flip else scaled


def _mirror(boxes: Tensor, width: int) -> Tensor:
    return boxes[..., [2, 1, 0, 3]] * boxes.new_tensor([-1.0, 1.0, -1.0, 1.0]) + boxes.new_tensor([width, 0.0, width, 0.0])


def views_for(scales: Sequence[float], flip: bool = False) -> list[View]:
    """The views of a test at ``scales``: each scale as it is, then (with ``flip``) each mirrored."""
    views = [View(float(s)) for s in scales]
    if flip:
        views += [View(float(s), True) for s in scales]
    return views
