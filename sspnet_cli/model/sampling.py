"""Assigning candidates (anchors, proposals) to ground truth, and sampling them for the loss.

``MaxIoUAssigner`` is mmdetection's rule, which torchvision's Matcher lacks in one point: a GT's
best candidates are made positive as "low-quality matches" only when their IoU reaches
``min_pos_iou`` (0.3 for the RPN), and they are assigned to that GT (later GTs win). It returns
each candidate's maximum IoF with the GTs (|GT n box| / |GT|), which Weighted Negative Sampling
needs.

Given the :class:`AnchorGrid` the candidates were laid out on (anchors: every base anchor at
every location of every level), it computes IoU/IoF only for the anchors whose boxes can
overlap a GT — a few thousand per person instead of all ~330,000 anchors of a 640x512 patch —
and gives exactly the dense answer (every other anchor has IoU and IoF 0). Without a grid (RoI
proposals) it works densely, in chunks of GTs so that a dense frame never holds the full IoU
matrix.

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


@dataclass(frozen=True)
class AnchorGrid:
    """How a concatenated anchor tensor was laid out: level ``k`` has ``sizes[k]`` = (h, w)
    locations at ``strides[k]``, each with the (A, 4) ``base`` anchors centred on
    (j * stride, i * stride), flattened in (i, j, a) order; levels follow each other."""

    sizes: tuple[tuple[int, int], ...]
    strides: tuple[int, ...]
    base: tuple[Tensor, ...]  # per level, (A, 4) float32, centred on 0

    @property
    def num_anchors(self) -> int:
        return sum(h * w * b.shape[0] for (h, w), b in zip(self.sizes, self.base))


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

    def __call__(self, gt: Tensor, boxes: Tensor, grid: Optional[AnchorGrid] = None) -> Assignment:
        """Assign ``boxes`` (N, 4) to ``gt`` (G, 4); with ``grid`` (the layout of ``boxes`` as
        anchors) only the anchors near each GT are compared, with the same result."""
        n = boxes.shape[0]
        device = boxes.device
        if gt.shape[0] == 0:
            return Assignment(torch.full((n,), NEGATIVE, dtype=torch.long, device=device), boxes.new_zeros(n))
        gt, boxes = gt.float(), boxes.float()
        if grid is not None:
            if grid.num_anchors != n:
                raise ValueError(f"anchor grid describes {grid.num_anchors} anchors, got {n}")
            result = self._assign_sparse(gt, boxes, grid)
            if result is not None:
                return result
        return self._assign_dense(gt, boxes)

    def _assign_dense(self, gt: Tensor, boxes: Tensor) -> Assignment:
        n = boxes.shape[0]
        device = boxes.device
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

    def _assign_sparse(self, gt: Tensor, boxes: Tensor, grid: AnchorGrid) -> Optional[Assignment]:
        """The dense rule on the (GT, anchor) pairs that can overlap; None where the dense rule
        would depend on pairs at IoU 0 (a GT overlapping no anchor with ``min_pos_iou`` <= 0
        makes every anchor its low-quality match)."""
        n = boxes.shape[0]
        device = boxes.device
        g_idx, a_idx = candidate_pairs(gt, grid)
        inter = _paired_inter(gt[g_idx], boxes[a_idx])
        area_b, area_g = _area(boxes), _area(gt)
        iou = inter / (area_g[g_idx] + area_b[a_idx] - inter).clamp(min=1e-6)
        iof = inter / area_g[g_idx].clamp(min=1e-6)
        num_gt = gt.shape[0]
        gt_best = gt.new_zeros(num_gt).scatter_reduce(0, g_idx, iou, "amax", include_self=True)
        if self.low_quality and self.min_pos_iou <= 0 and bool((gt_best <= 0).any()):
            return None
        max_iof = boxes.new_zeros(n).scatter_reduce(0, a_idx, iof, "amax", include_self=True)
        # anchors without a candidate pair have IoU 0 with every GT: best 0, first GT
        best_iou = boxes.new_zeros(n).scatter_reduce(0, a_idx, iou, "amax", include_self=True)
        at_best = iou == best_iou[a_idx]
        big = torch.full((n,), num_gt, dtype=torch.long, device=device)
        best_gt = big.scatter_reduce(0, a_idx[at_best], g_idx[at_best], "amin", include_self=True)
        best_gt = torch.where(best_gt == num_gt, torch.zeros_like(best_gt), best_gt)
        matched = torch.full((n,), IGNORED, dtype=torch.long, device=device)
        matched[best_iou < self.neg_iou] = NEGATIVE
        pos = best_iou >= self.pos_iou
        matched[pos] = best_gt[pos]
        if self.low_quality:
            best = gt_best[g_idx]
            hit = (iou == best) & (best >= self.min_pos_iou)
            if bool(hit.any()):
                last = torch.full((n,), -1, dtype=torch.long, device=device)
                last = last.scatter_reduce(0, a_idx[hit], g_idx[hit], "amax", include_self=True)
                matched = torch.where(last >= 0, last, matched)
        return Assignment(matched, max_iof)


def candidate_pairs(gt: Tensor, grid: AnchorGrid) -> tuple[Tensor, Tensor]:
    """(GT index, anchor index) of every anchor of ``grid`` whose box can overlap a GT box.

    For base anchor (w, h) at stride s the centres j*s overlapping [x1, x2] lie in
    ((x1 - w/2)/s, (x2 + w/2)/s); the range is widened by one location each way so float
    rounding can never leave an overlapping anchor out (extra anchors just get IoU 0).
    """
    device = gt.device
    g_parts, a_parts = [], []
    offset = 0
    for (h, w), stride, base in zip(grid.sizes, grid.strides, grid.base):
        base = base.to(device)
        num_a = base.shape[0]
        # (G, A) ranges of rows and columns, inclusive
        x_lo = torch.floor((gt[:, None, 0] - base[None, :, 2]) / stride) - 1
        x_hi = torch.ceil((gt[:, None, 2] - base[None, :, 0]) / stride) + 1
        y_lo = torch.floor((gt[:, None, 1] - base[None, :, 3]) / stride) - 1
        y_hi = torch.ceil((gt[:, None, 3] - base[None, :, 1]) / stride) + 1
        j0, j1 = x_lo.clamp(0, w - 1).long(), x_hi.clamp(-1, w - 1).long()
        i0, i1 = y_lo.clamp(0, h - 1).long(), y_hi.clamp(-1, h - 1).long()
        nx, ny = (j1 - j0 + 1).clamp(min=0), (i1 - i0 + 1).clamp(min=0)
        counts = (nx * ny).reshape(-1)
        total = int(counts.sum())
        if total:
            cell = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
            start = torch.cumsum(counts, 0) - counts
            k = torch.arange(total, device=device) - start[cell]
            nx_c = nx.reshape(-1)[cell]
            ii = i0.reshape(-1)[cell] + k // nx_c
            jj = j0.reshape(-1)[cell] + k % nx_c
            a = cell % num_a
            g_parts.append(cell // num_a)
            a_parts.append(offset + (ii * w + jj) * num_a + a)
        offset += h * w * num_a
    if not g_parts:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    return torch.cat(g_parts), torch.cat(a_parts)


def _paired_inter(gt: Tensor, boxes: Tensor) -> Tensor:
    """Intersection areas of row-aligned boxes (the same float operations as
    :func:`_pairwise_inter`, so the values agree bit for bit)."""
    lt = torch.maximum(gt[:, :2], boxes[:, :2])
    rb = torch.minimum(gt[:, 2:], boxes[:, 2:])
    wh = (rb - lt).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


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
