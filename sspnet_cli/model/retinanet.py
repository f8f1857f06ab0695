"""RetinaNet with an SSPNet (or FPN) neck: one stage on P2..P6 (docs/model.md, "RetinaNet").

Reused from torchvision: ``RetinaNetHead`` (4 stacked 3x3 conv + ReLU per branch, shared over
levels, normal(0.01) weights, classifier bias -log((1 - 0.01) / 0.01)), ``sigmoid_focal_loss``
and the box coder. Written here, because torchvision's RetinaNet differs from the reference:
our unrounded anchors (9 per location, P2..P6), mmdetection's assigner (IoU >= 0.5 positive,
< 0.4 negative, every GT keeps its best anchors), losses normalised by the positives of the
whole batch (torchvision normalises per image and averages), and the test: per level the
scores above 0.05, top 1000, then linear soft-NMS at 0.3 and at most 500 boxes per patch.
WNS does not apply (nothing is sampled); the attention loss does.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import boxes as box_ops
from torchvision.ops import sigmoid_focal_loss

from sspnet_cli.config import ModelConfig
from sspnet_cli.model.anchors import AnchorGenerator
from sspnet_cli.model.detector import BoxDicts, PyramidDetector
from sspnet_cli.model.sampling import IGNORED, AnchorGrid, MaxIoUAssigner
from sspnet_cli.model.soft_nms import soft_nms
from sspnet_cli.model.views import View

# soft-NMS holds one n x n IoU matrix per image and a patch can bring 5 levels x 1000 candidates
# (twice that at two test scales): images go through it in groups whose matrices together stay
# under this many elements (256 MB of fp32)
SOFT_NMS_BUDGET = 1 << 26


class RetinaNet(PyramidDetector):
    """Backbone -> neck (SSPNet or FPN) -> RetinaNet head on P2..P6."""

    def __init__(self, cfg: ModelConfig, backbone_weights: Optional[str] = None) -> None:
        super().__init__(cfg, backbone_weights)
        rc = cfg.retinanet
        self.anchor_generator = AnchorGenerator(cfg.anchors.scales, cfg.anchors.ratios, cfg.anchors.strides)
        self.head = RetinaNetHead(cfg.neck_channels, self.anchor_generator.num_anchors_per_location, cfg.num_classes)
        nn.init.constant_(self.head.classification_head.cls_logits.bias, -math.log((1 - rc.prior_prob) / rc.prior_prob))
        self.box_coder = det_utils.BoxCoder(weights=tuple(1.0 / s for s in rc.box_stds))
        self.assigner = MaxIoUAssigner(rc.pos_iou, rc.neg_iou, rc.min_pos_iou, low_quality=True)
        self.num_classes = cfg.num_classes

    def head_outputs(self, levels: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, list[int]]:
        """Class logits (B, N, K), box deltas (B, N, 4), the N anchors and their count per level."""
        out = self.head(levels)
        per_level = self.anchor_generator.grid_anchors([tuple(f.shape[-2:]) for f in levels], levels[0].device)
        return out["cls_logits"], out["bbox_regression"], torch.cat(per_level), [len(a) for a in per_level]

    # -- training ---------------------------------------------------------------------------
    def losses(self, batch: Tensor, sizes: list[tuple[int, int]], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        levels, attentions = self.features(batch)
        logits, deltas, anchors, _ = self.head_outputs(levels)
        grid = self.anchor_generator.grid([tuple(f.shape[-2:]) for f in levels])
        losses = self.head_losses(logits, deltas, anchors, targets, grid)
        losses.update(self.attention_losses(batch, attentions, targets))
        return losses

    def head_losses(
        self,
        logits: Tensor,
        deltas: Tensor,
        anchors: Tensor,
        targets: list[dict[str, Tensor]],
        grid: Optional[AnchorGrid] = None,
    ) -> dict[str, Tensor]:
        """Sigmoid focal loss over positive and negative anchors (ignored ones left out) and L1 on
        the positives' deltas, both divided by the number of positives in the batch."""
        rc = self.cfg.retinanet
        cls_sum = logits.new_zeros((), dtype=torch.float32)
        box_pred, box_target = [], []
        num_pos = 0
        for img_logits, img_deltas, target in zip(logits, deltas, targets):
            gt, gt_labels = target["boxes"], target["labels"]
            # a zero-area box would match every anchor at IoU 0 (min_pos_iou is 0) and has no deltas
            real = (gt[:, 2] > gt[:, 0]) & (gt[:, 3] > gt[:, 1])
            gt, gt_labels = gt[real], gt_labels[real]
            matched = self.assigner(gt, anchors, grid).matched
            pos = torch.nonzero(matched >= 0).flatten()
            valid = matched != IGNORED
            onehot = torch.zeros_like(img_logits, dtype=torch.float32)
            onehot[pos, gt_labels[matched[pos]] - 1] = 1.0
            cls_sum = cls_sum + sigmoid_focal_loss(
                img_logits[valid].float(), onehot[valid], alpha=rc.focal_alpha, gamma=rc.focal_gamma, reduction="sum"
            )
            box_pred.append(img_deltas[pos])
            box_target.append(self.box_coder.encode_single(gt[matched[pos]].to(anchors.dtype), anchors[pos]))
            num_pos += pos.numel()
        n = max(num_pos, 1)
        box_loss = F.l1_loss(torch.cat(box_pred).float(), torch.cat(box_target).float(), reduction="sum") / n
        return {"loss_retina_cls": cls_sum / n, "loss_retina_box": box_loss}

    # -- test -------------------------------------------------------------------------------
    def _detect(self, batch: Tensor, sizes: list[tuple[int, int]]) -> tuple[BoxDicts, list[Tensor]]:
        levels, attentions = self.features(batch)
        candidates = self.candidates(levels, View(), batch.shape[-1])
        return self.select(candidates, sizes), attentions

    def _predict_multiscale(
        self, batch: Tensor, sizes: list[tuple[int, int]], views: Sequence[View], with_attention: bool
    ) -> tuple[BoxDicts, list[Tensor]]:
        """The up-sampled test as mmdetection's for dense heads: every view's candidates (score
        threshold and top 1000 per level), mapped back to input pixels, are pooled per image;
        soft-NMS and the cap run once on the pool."""
        normalised = self._normalise(batch)
        pooled: list[list[tuple[Tensor, Tensor, Tensor]]] = [[] for _ in sizes]
        first_att: list[Tensor] = []
        for view in views:
            scaled = view.image(normalised)
            levels, att = self.features(self._pad(scaled))
            if not first_att:
                first_att = att
            for i, cand in enumerate(self.candidates(levels, view, scaled.shape[-1])):
                pooled[i].append(cand)
        merged = [tuple(torch.cat(parts) for parts in zip(*per_image)) for per_image in pooled]
        return self.select(merged, sizes), (first_att if with_attention else [])  # type: ignore[arg-type]

    def candidates(self, levels: list[Tensor], view: View, view_width: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per image: (boxes in input pixels, scores, labels) of the (anchor, class) pairs scoring
        above ``score_thresh``, at most ``pre_nms_top_n`` per level; ``view`` is how the batch
        (``view_width`` pixels wide before padding) was made from the input."""
        rc = self.cfg.retinanet
        logits, deltas, anchors, counts = self.head_outputs(levels)
        out = []
        for img_logits, img_deltas in zip(logits, deltas):
            boxes, scores, labels = [], [], []
            for lg, dl, an in zip(img_logits.split(counts), img_deltas.split(counts), anchors.split(counts)):
                prob = torch.sigmoid(lg.float()).flatten()
                idx = torch.nonzero(prob > rc.score_thresh).flatten()
                top, order = prob[idx].topk(min(rc.pre_nms_top_n, idx.numel()))
                idx = idx[order]
                anchor_idx = torch.div(idx, self.num_classes, rounding_mode="floor")
                boxes.append(view.to_input(self.box_coder.decode_single(dl[anchor_idx].float(), an[anchor_idx]), view_width))
                scores.append(top)
                labels.append(idx % self.num_classes + 1)
            out.append((torch.cat(boxes), torch.cat(scores), torch.cat(labels)))
        return out

    def select(self, candidates: list[tuple[Tensor, Tensor, Tensor]], image_sizes: list[tuple[int, int]]) -> BoxDicts:
        """Clip the candidates to their image, then linear soft-NMS per class and the cap."""
        rc = self.cfg.retinanet
        clipped, shifted = [], []
        for (boxes, scores, labels), size in zip(candidates, image_sizes):
            boxes = box_ops.clip_boxes_to_image(boxes, size)
            clipped.append(boxes)
            # classes never suppress each other: shift each class into a region of its own
            offset = labels.to(boxes.dtype)[:, None] * (max(size) + 1)
            shifted.append(boxes + offset if self.num_classes > 1 else boxes)
        kept: list[tuple[Tensor, Tensor]] = []
        for group in _groups([len(b) for b in shifted], SOFT_NMS_BUDGET):
            kept += soft_nms(
                [shifted[i] for i in group], [candidates[i][1] for i in group],
                rc.soft_nms_iou, rc.soft_nms_min_score, rc.detections_per_img,
            )
        return [
            {"boxes": boxes[idx], "scores": sc, "labels": cand[2][idx]}
            for (idx, sc), boxes, cand in zip(kept, clipped, candidates)
        ]


def _groups(counts: list[int], budget: int) -> list[list[int]]:
    """Consecutive image indices grouped so that each group's padded soft-NMS IoU matrices
    (images x n_max^2) stay within ``budget`` elements; an image over budget goes alone."""
    groups: list[list[int]] = []
    current: list[int] = []
    largest = 0
    for i, n in enumerate(counts):
        if current and (len(current) + 1) * max(largest, n) ** 2 > budget:
            groups.append(current)
            current, largest = [], 0
        current.append(i)
        largest = max(largest, n)
    if current:
        groups.append(current)
    return groups
