"""Assigning candidates (anchors, proposals) to ground truth, and sampling them for the loss.

``MaxIoUAssigner`` is mmdetection's rule, which torchvision's Matcher lacks in one point: a GT's
best candidates are made positive as "low-quality matches" only when their IoU reaches
``min_pos_iou`` (0.3 for the RPN), and they are assigned to that GT (later GTs win). It works in
chunks of GTs so that a dense frame (hundreds of people x 300k anchors) never holds the full IoU
matrix, and it returns each candidate's maximum IoF with the GTs (|GT n box| / |GT|), which
Weighted Negative Sampling needs.

``sample`` draws positives uniformly and negatives either uniformly or by WNS: without
replacement with probability softmax(lam * confidence + (1 - lam) * IoF).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

NEGATIVE = -1
IGNORED = -2


@dataclass
class Assignment:
    """Per candidate: ``matched`` GT index (>= 0), NEGATIVE or IGNORED; ``max_iof`` in [0, 1]."""

    matched: Tensor
    max_iof: Tensor


def _pairwise_inter(gt: Tensor, boxes: Tensor) -> Tensor:
    lt = torch.maximum(gt[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(gt[:, None, 2:], boxes[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def _area(b: Tensor) -> Tensor:
    return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)


class MaxIoUAssigner:
    """Positive at IoU >= ``pos_iou``, negative below ``neg_iou``, ignored between; optional
    low-quality matches at IoU >= ``min_pos_iou`` (every candidate tied at a GT's best IoU)."""

    def __init__(
        self, pos_iou: float, neg_iou: float, min_pos_iou: float, low_quality: bool, chunk_elems: int = 1 << 23
    ) -> None:
        self.pos_iou, self.neg_iou, self.min_pos_iou = pos_iou, neg_iou, min_pos_iou
        self.low_quality = low_quality
        self.chunk_elems = chunk_elems

    def _chunks(self, num_gt: int, num_boxes: int) -> range:
        step = max(1, self.chunk_elems // max(num_boxes, 1))
        return range(0, num_gt, step)

    def __call__(self, gt: Tensor, boxes: Tensor) -> Assignment:
        n = boxes.shape[0]
        device = boxes.device
        if gt.shape[0] == 0:
            return Assignment(torch.full((n,), NEGATIVE, dtype=torch.long, device=device), boxes.new_zeros(n))
        gt, boxes = gt.float(), boxes.float()
        area_b, area_g = _area(boxes), _area(gt)
        best_iou = boxes.new_full((n,), -1.0)
        best_gt = torch.zeros(n, dtype=torch.long, device=device)
        max_iof = boxes.new_zeros(n)
        gt_best = gt.new_zeros(gt.shape[0])
        step = self._chunks(gt.shape[0], n).step
        for start in range(0, gt.shape[0], step):
            g = gt[start : start + step]
            inter = _pairwise_inter(g, boxes)
            iou = inter / (area_g[start : start + step, None] + area_b[None, :] - inter).clamp(min=1e-6)
            iof = inter / area_g[start : start + step, None].clamp(min=1e-6)
            max_iof = torch.maximum(max_iof, iof.max(0).values)
            val, idx = iou.max(0)
            better = val > best_iou  # strict: the first GT wins ties, like argmax over all GTs
            best_iou = torch.where(better, val, best_iou)
            best_gt = torch.where(better, idx + start, best_gt)
            gt_best[start : start + step] = iou.max(1).values
        matched = torch.full((n,), IGNORED, dtype=torch.long, device=device)
        matched[(best_iou >= 0) & (best_iou < self.neg_iou)] = NEGATIVE
        pos = best_iou >= self.pos_iou
        matched[pos] = best_gt[pos]
        if self.low_quality:
            for start in range(0, gt.shape[0], step):
                g = gt[start : start + step]
                inter = _pairwise_inter(g, boxes)
                iou = inter / (area_g[start : start + step, None] + area_b[None, :] - inter).clamp(min=1e-6)
                best = gt_best[start : start + step, None]
                hit = (iou == best) & (best >= self.min_pos_iou)
                if hit.any():
                    # the last GT (highest index) that hits a candidate wins, as in mmdetection
                    gt_idx = torch.arange(start, start + g.shape[0], device=device)[:, None].expand_as(hit)
                    last = torch.where(hit, gt_idx, torch.full_like(gt_idx, -1)).max(0).values
                    matched = torch.where(last >= 0, last, matched)
        return Assignment(matched, max_iof)


def sample(
    matched: Tensor,
    num: int,
    positive_fraction: float,
    neg_logits: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> tuple[Tensor, Tensor]:
    """Indices of sampled positives and negatives.

    Positives (``matched >= 0``) uniformly, at most ``num * positive_fraction``; negatives fill
    the rest, uniformly or, given ``neg_logits``, without replacement with probability
    proportional to exp(logit) (a softmax over the negative pool).
    """
    pos = torch.nonzero(matched >= 0).flatten()
    neg = torch.nonzero(matched == NEGATIVE).flatten()
    num_pos = min(int(num * positive_fraction), pos.numel())
    num_neg = min(num - num_pos, neg.numel())
    device = matched.device
    pos = pos[torch.randperm(pos.numel(), device=device, generator=generator)[:num_pos]]
    if num_neg == 0:
        return pos, neg[:0]
    if neg_logits is None:
        neg = neg[torch.randperm(neg.numel(), device=device, generator=generator)[:num_neg]]
    else:
        logits = neg_logits[neg].float()
        weights = torch.exp(logits - logits.max())
        neg = neg[torch.multinomial(weights, num_neg, replacement=False, generator=generator)]
    return pos, neg


def wns_logits(confidence: Optional[Tensor], max_iof: Tensor, lam: float) -> Tensor:
    """lam * C + (1 - lam) * IoF; where no confidence exists, lam * IoF (the official code's
    RPN sampler, where anchors carry no confidence: exp(0.6 * IoF))."""
    if confidence is None:
        return lam * max_iof
    return lam * confidence.float() + (1 - lam) * max_iof
