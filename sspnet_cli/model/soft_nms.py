"""Linear soft-NMS (mmcv's ``soft_nms(method='linear')``), for a whole batch at once.

Repeatedly take the highest-scoring remaining box; every remaining box overlapping it by
IoU > ``iou_threshold`` has its score multiplied by (1 - IoU); boxes falling under ``min_score``
are dropped. A box's score is final when it is taken, and later scores only decay, so the
selection order is by final score: stopping after ``max_out`` selections gives exactly the
top ``max_out`` boxes of the full algorithm. Torchvision has no soft-NMS.

All images of a batch are processed together on their device (one IoU matrix per image), so a
batch of tiles costs one loop of at most ``max_out`` steps, not one per tile. On the CPU the same
loop runs in NumPy, image by image: each of its steps is a handful of operations on a few
hundred floats, where torch's per-call overhead (~10 us an operation) was most of a 640x512
tile's soft-NMS time. Both paths compute the same float32 operations in the same order and give
identical results (tested).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_iou


def soft_nms(
    boxes: list[Tensor], scores: list[Tensor], iou_threshold: float = 0.3, min_score: float = 0.05, max_out: int = 500
) -> list[tuple[Tensor, Tensor]]:
    """Soft-NMS per image. Returns, per image, the kept indices into its input (selection order,
    at most ``max_out``) and their decayed scores."""
    batch = len(boxes)
    if batch == 0:
        return []
    device = boxes[0].device
    n = max(int(b.shape[0]) for b in boxes)
    if n == 0:
        empty = torch.zeros((0,), dtype=torch.long, device=device)
        return [(empty, torch.zeros((0,), device=device)) for _ in boxes]
    if device.type == "cpu":
        return [_soft_nms_numpy(b, sc, iou_threshold, min_score, max_out) for b, sc in zip(boxes, scores)]
    return _soft_nms_batched(boxes, scores, iou_threshold, min_score, max_out)


def _soft_nms_batched(
    boxes: list[Tensor], scores: list[Tensor], iou_threshold: float, min_score: float, max_out: int
) -> list[tuple[Tensor, Tensor]]:
    """The whole batch in one loop on its device (at least one box in the batch)."""
    batch = len(boxes)
    device = boxes[0].device
    n = max(int(b.shape[0]) for b in boxes)
    padded_boxes = torch.zeros((batch, n, 4), dtype=torch.float32, device=device)
    s = torch.full((batch, n), -1.0, dtype=torch.float32, device=device)
    for i, (b, sc) in enumerate(zip(boxes, scores)):
        padded_boxes[i, : len(b)] = b.float()
        s[i, : len(sc)] = sc.float()
    iou = torch.stack([box_iou(b, b) for b in padded_boxes])  # (B, n, n)
    alive = s >= min_score
    rows = torch.arange(batch, device=device)
    steps = min(max_out, n)
    out_idx = torch.full((batch, steps), -1, dtype=torch.long, device=device)
    out_score = torch.zeros((batch, steps), dtype=torch.float32, device=device)
    for k in range(steps):
        best_score, best = torch.where(alive, s, torch.full_like(s, -1.0)).max(1)
        valid = best_score >= min_score
        out_idx[:, k] = torch.where(valid, best, torch.full_like(best, -1))
        out_score[:, k] = best_score
        alive[rows, best] = False
        overlap = iou[rows, best]  # (B, n)
        s = s * torch.where(overlap > iou_threshold, 1.0 - overlap, torch.ones_like(overlap))
        alive &= s >= min_score
        if k % 16 == 15 and not bool(alive.any()):  # one host sync every 16 steps
            break
    result = []
    for i in range(batch):
        keep = out_idx[i] >= 0
        result.append((out_idx[i][keep], out_score[i][keep]))
    return result


def _soft_nms_numpy(boxes: Tensor, scores: Tensor, iou_threshold: float, min_score: float, max_out: int) -> tuple[Tensor, Tensor]:
    """One image's soft-NMS on the CPU: the loop of :func:`soft_nms`, step for step."""
    if boxes.shape[0] == 0:
        return torch.zeros((0,), dtype=torch.long), torch.zeros((0,))
    b = boxes.detach().float()
    iou = box_iou(b, b).numpy()
    s = scores.detach().float().numpy().copy()
    floor = np.float32(min_score)
    alive = s >= floor
    one = np.float32(1.0)
    threshold = np.float32(iou_threshold)
    out_idx: list[int] = []
    out_score: list[float] = []
    for _ in range(min(max_out, len(s))):
        masked = np.where(alive, s, np.float32(-1.0))
        best = int(masked.argmax())
        if masked[best] < floor:
            break
        out_idx.append(best)
        out_score.append(masked[best])
        alive[best] = False
        overlap = iou[best]
        s *= np.where(overlap > threshold, one - overlap, one)
        alive &= s >= floor
    return torch.tensor(out_idx, dtype=torch.long), torch.tensor(np.asarray(out_score, dtype=np.float32))
