"""Merging per-tile detections into one set per frame, on the detections' device.

1. Tile boxes are shifted to frame pixels and clipped to the frame.
2. A box whose centre falls on an invalid pixel (nodata, or padding past the frame) is dropped:
   nodata areas never produce detections.
3. A box that touches a tile edge lying inside the frame is a person cut by that tile. With the
   tile overlap, a person smaller than the overlap lies whole inside a neighbouring window, which
   reports the full box; the cut box is then dropped. (Plain NMS often keeps both: a half box and
   a whole one overlap by IoU ~0.5.) A cut box that no other window contains whole is kept.
4. One class-agnostic NMS at ``nms_iou`` (torchvision), boxes sorted by score.
The official pipeline uses only step 4 with legacy "+1 px" areas; we use continuous areas.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor
from torchvision.ops import nms

from sspnet_cli.types import Detections, Window

EDGE_EPS = 1.0  # a box within 1 px of a tile edge touches it


def tile_to_frame(
    det: dict[str, Tensor], window: Window, frame_size: tuple[int, int], valid: Optional[Tensor] = None
) -> tuple[Detections, Tensor]:
    """Shift one tile's detections to frame pixels, clip them to the frame, and drop those centred
    on invalid pixels of the tile's ``valid`` mask (H x W bool, None = all valid).

    Returns the detections and, per box, whether it touches an edge of the tile that lies inside
    the frame (a possibly cut person)."""
    W, H = frame_size
    boxes = det["boxes"].float()
    scores, labels = det["scores"].float(), det["labels"]
    if valid is not None and len(boxes):
        cx = ((boxes[:, 0] + boxes[:, 2]) / 2).long().clamp(0, valid.shape[1] - 1)
        cy = ((boxes[:, 1] + boxes[:, 3]) / 2).long().clamp(0, valid.shape[0] - 1)
        keep = valid[cy, cx]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    x0, y0, tw, th = window
    inner_left, inner_top = x0 > 0, y0 > 0
    inner_right, inner_bottom = x0 + tw < W, y0 + th < H
    cut = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    if inner_left:
        cut |= boxes[:, 0] <= EDGE_EPS
    if inner_top:
        cut |= boxes[:, 1] <= EDGE_EPS
    if inner_right:
        cut |= boxes[:, 2] >= tw - EDGE_EPS
    if inner_bottom:
        cut |= boxes[:, 3] >= th - EDGE_EPS
    shift = torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype, device=boxes.device)
    framed = boxes + shift
    framed[:, 0::2] = framed[:, 0::2].clamp(0, W)
    framed[:, 1::2] = framed[:, 1::2].clamp(0, H)
    nonempty = (framed[:, 2] > framed[:, 0]) & (framed[:, 3] > framed[:, 1])
    return Detections(framed[nonempty], scores[nonempty], labels[nonempty]), cut[nonempty]


def merge_frame(
    parts: Sequence[tuple[Detections, Tensor, int]],
    windows: Sequence[Window],
    nms_iou: float,
    score_thr: float = 0.0,
) -> Detections:
    """Merge the per-tile parts of one frame: ``(detections, cut flags, window index)`` each.

    Cut boxes contained whole in another window are dropped, the rest go through one
    class-agnostic NMS; the result is sorted by score (highest first)."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return Detections.empty()
    device = parts[0][0].boxes.device
    boxes = torch.cat([p[0].boxes for p in parts])
    scores = torch.cat([p[0].scores for p in parts])
    labels = torch.cat([p[0].labels for p in parts])
    cut = torch.cat([p[1] for p in parts])
    source = torch.cat([torch.full((len(p[0]),), p[2], dtype=torch.long, device=device) for p in parts])
    keep = scores >= score_thr
    if bool(cut.any()):
        win = torch.tensor([[w.x, w.y, w.x + w.width, w.y + w.height] for w in windows], dtype=boxes.dtype, device=device)
        idx = torch.nonzero(cut & keep).flatten()
        b = boxes[idx]
        inside = (
            (win[None, :, 0] <= b[:, None, 0])
            & (win[None, :, 1] <= b[:, None, 1])
            & (win[None, :, 2] >= b[:, None, 2])
            & (win[None, :, 3] >= b[:, None, 3])
        )
        inside[torch.arange(len(idx), device=device), source[idx]] = False  # its own window does not count
        keep[idx[inside.any(1)]] = False
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    order = nms(boxes, scores, nms_iou)  # sorted by decreasing score
    return Detections(boxes[order], scores[order], labels[order])
