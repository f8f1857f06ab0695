"""Supervised attention: targets for the SSPNet scale-selection maps, and their loss.

Targets (docs/model.md, section 3): for level l = 0..3 (P2..P5), lo = 2^(l+2), hi = 2^(l+5)
and box side s = sqrt(w*h), a box is +1 if lo < s < hi (also s < lo on P2 and s > lo on P5),
otherwise -1 ("wrong scale here"). Boxes fill their pixel rectangle
[floor(x1), ceil(x2)) x [floor(y1), ceil(y2)) on a full-resolution canvas, later boxes over
earlier ones, and the canvas is resized bilinearly (half-pixel centres, no antialias) to the
level's size. Two small deviations from the official code, both deliberate: the level rule uses
the real box side rather than the side of the rounded rectangle, and the last canvas row/column
can be painted (the official code clips to size - 1).

Rather than painting whole canvases per image (the official code loops over images in numpy and
breaks past 4 images per GPU), we paint only the canvas pixels the bilinear resize samples,
for the whole batch at once with tensor ops, and combine them with the resize weights. The
result equals painting and resizing the full canvas.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from sspnet_cli.config import AttentionConfig


def level_values(sides: Tensor, level: int, num_levels: int = 4) -> Tensor:
    """+1/-1 per box side for pyramid level ``level`` (0 = P2)."""
    lo, hi = 2.0 ** (level + 2), 2.0 ** (level + 5)
    pos = (sides > lo) & (sides < hi)
    if level == 0:
        pos |= sides < lo
    if level == num_levels - 1:
        pos |= sides > lo
    return torch.where(pos, 1.0, -1.0).to(sides.dtype)


def _bilinear_taps(out_size: int, in_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices (i0, i1) and weight of i1 for a 1-D bilinear resize, as F.interpolate
    computes it with ``align_corners=False`` (negative source positions clamp to 0)."""
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = (src - i0).float()
    return i0, i1, w1


def attention_targets(
    boxes: Sequence[Tensor], canvas_size: tuple[int, int], level_sizes: Sequence[tuple[int, int]]
) -> list[Tensor]:
    """Targets (B, h, w) per level for the boxes of each image (xyxy, canvas pixels)."""
    device = boxes[0].device if len(boxes) else torch.device("cpu")
    batch = len(boxes)
    H, W = canvas_size
    all_boxes = torch.cat([b.reshape(-1, 4).float() for b in boxes]) if batch else torch.zeros((0, 4))
    image_of = torch.cat(
        [torch.full((len(b),), i, dtype=torch.long, device=device) for i, b in enumerate(boxes)]
    ) if batch else torch.zeros((0,), dtype=torch.long)
    sides = ((all_boxes[:, 2] - all_boxes[:, 0]).clamp(min=0) * (all_boxes[:, 3] - all_boxes[:, 1]).clamp(min=0)).sqrt()
    # painted pixel rectangle, clipped to the canvas
    x0 = all_boxes[:, 0].floor().clamp(0, W).long()
    x1 = all_boxes[:, 2].ceil().clamp(0, W).long()
    y0 = all_boxes[:, 1].floor().clamp(0, H).long()
    y1 = all_boxes[:, 3].ceil().clamp(0, H).long()

    targets = []
    for level, (h, w) in enumerate(level_sizes):
        r0, r1, wr = _bilinear_taps(h, H, device)
        c0, c1, wc = _bilinear_taps(w, W, device)
        rows = torch.unique(torch.cat([r0, r1]))  # sorted canvas rows the resize reads
        cols = torch.unique(torch.cat([c0, c1]))
        owner = _paint_last_box(image_of, y0, y1, x0, x1, rows, cols, batch)  # (B, R, C), 0 = none
        values = torch.cat([torch.zeros(1, device=device), level_values(sides, level)])
        sub = values[owner]  # owner 0 (no box) reads the leading 0
        ri0, ri1 = torch.searchsorted(rows, r0), torch.searchsorted(rows, r1)
        ci0, ci1 = torch.searchsorted(cols, c0), torch.searchsorted(cols, c1)
        top = sub[:, ri0][:, :, ci0] * (1 - wc) + sub[:, ri0][:, :, ci1] * wc
        bottom = sub[:, ri1][:, :, ci0] * (1 - wc) + sub[:, ri1][:, :, ci1] * wc
        targets.append(top * (1 - wr)[:, None] + bottom * wr[:, None])
    return targets


def _paint_last_box(
    image_of: Tensor, y0: Tensor, y1: Tensor, x0: Tensor, x1: Tensor, rows: Tensor, cols: Tensor, batch: int
) -> Tensor:
    """For each sampled canvas pixel, 1 + the index of the last box covering it (0 if none)."""
    R, C = len(rows), len(cols)
    canvas = torch.zeros(batch * R * C, dtype=torch.long, device=rows.device)
    if len(image_of) == 0:
        return canvas.view(batch, R, C)
    ra, rb = torch.searchsorted(rows, y0), torch.searchsorted(rows, y1)  # covered rows [ra, rb)
    ca, cb = torch.searchsorted(cols, x0), torch.searchsorted(cols, x1)
    nr, nc = (rb - ra).clamp(min=0), (cb - ca).clamp(min=0)
    counts = nr * nc
    total = int(counts.sum())
    if total == 0:
        return canvas.view(batch, R, C)
    box = torch.repeat_interleave(torch.arange(len(counts), device=rows.device), counts)
    start = torch.cumsum(counts, 0) - counts
    offset = torch.arange(total, device=rows.device) - start[box]
    row = ra[box] + offset // nc[box]
    col = ca[box] + offset % nc[box]
    flat = image_of[box] * (R * C) + row * C + col
    canvas.scatter_reduce_(0, flat, box + 1, reduce="amax")
    return canvas.view(batch, R, C)


def attention_loss(attentions: Sequence[Tensor], targets: Sequence[Tensor], cfg: AttentionConfig) -> dict[str, Tensor]:
    """The SSPNet attention loss, summed over levels.

    ``dice+bce`` (default): ``bce_weight`` x BCE over OHEM-selected pixels (all positives, the
    ``ohem_ratio`` x |pos| highest-scoring background pixels, or ``empty_bg_fraction`` of the
    map when an image has no positives, and every wrong-scale pixel with weight
    ``wrong_scale_weight``), normalised by the number of selected pixels in the batch; plus
    ``dice_weight`` x Dice over positive pixels (binarised targets; 0 for an image without
    positives; batch mean). ``bce``: plain BCE over all pixels (targets clamped to >= 0), the
    ablation of the paper's Table III.
    """
    bce_total = attentions[0].new_zeros((), dtype=torch.float32)
    dice_total = attentions[0].new_zeros((), dtype=torch.float32)
    with torch.autocast(device_type=attentions[0].device.type, enabled=False):
        for att, target in zip(attentions, targets):
            pred = att.float().flatten(1)  # (B, h*w)
            t = target.float().flatten(1)
            if cfg.loss == "bce":
                bce_total = bce_total + F.binary_cross_entropy(pred, t.clamp(min=0))
                continue
            weight = ohem_weights(pred.detach(), t, cfg)
            selected = (weight > 0).sum().clamp(min=1)
            bce = F.binary_cross_entropy(pred, t.clamp(min=0), weight=weight, reduction="sum") / selected
            bce_total = bce_total + cfg.bce_weight * bce
            dice_total = dice_total + cfg.dice_weight * dice_loss(pred, t).mean()
    if cfg.loss == "bce":
        return {"loss_att_bce": bce_total}
    return {"loss_att_bce": bce_total, "loss_att_dice": dice_total}


def ohem_weights(pred: Tensor, target: Tensor, cfg: AttentionConfig) -> Tensor:
    """Per-pixel BCE weights (B, N): 1 for positives and the selected hard background pixels,
    ``wrong_scale_weight`` for wrong-scale pixels, 0 elsewhere."""
    pos, wrong, bg = target > 0, target < 0, target == 0
    n_pos, n_bg = pos.sum(1), bg.sum(1)
    k = torch.where(
        n_pos > 0,
        torch.minimum(cfg.ohem_ratio * n_pos, n_bg),
        torch.minimum(torch.full_like(n_bg, int(cfg.empty_bg_fraction * target.shape[1])), n_bg),
    )
    bg_scores = torch.where(bg, pred, torch.full_like(pred, -1.0))
    ranked = bg_scores.sort(dim=1, descending=True).values
    # k-th highest background score; ties at the threshold are all kept, as in the official code
    thr = ranked.gather(1, (k - 1).clamp(min=0)[:, None])
    hard_bg = bg & (pred >= thr) & (k > 0)[:, None]
    weight = (pos | hard_bg).float()
    return torch.where(wrong, torch.full_like(weight, cfg.wrong_scale_weight), weight)


def dice_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image ``1 - 2(sum p + 1) / (sum p^2 + N_pos + 2)`` over positive pixels (B,)."""
    pos = (target > 0).float()
    p = pred * pos
    return 1 - 2 * (p.sum(1) + 1) / ((p * p).sum(1) + pos.sum(1) + 2)
