"""The R-CNN stage: RoIAlign from P2..P5, two FC-1024 layers, classification and box deltas.

What torchvision lacks and is written here: the RoI level mapper with ``finest_scale`` 56 and an
aligned RoIAlign (torchvision's MultiScaleRoIAlign uses aligned=False), the sampler with WNS
(confidence = the proposal's RPN objectness), L1 box loss, and linear soft-NMS at test.
Reused: ``roi_align``, the box coder and ``TwoMLPHead``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align

from sspnet_cli.config import RoIConfig, WNSConfig
from sspnet_cli.model.sampling import MaxIoUAssigner, sample, wns_logits
from sspnet_cli.model.soft_nms import soft_nms


class LevelRoIAlign(nn.Module):
    """RoIAlign (aligned) from the level chosen by ``floor(log2(sqrt(w*h) / finest_scale + 1e-6))``,
    clamped to the available levels: almost every tiny RoI pools from P2."""

    def __init__(self, strides: Sequence[int], output_size: int, sampling_ratio: int, finest_scale: float) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.finest_scale = finest_scale

    def levels(self, boxes: Tensor) -> Tensor:
        scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()
        lvl = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return lvl.clamp(0, len(self.strides) - 1).long()

    def forward(self, features: list[Tensor], boxes: list[Tensor]) -> Tensor:
        rois = torch.cat(
            [torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)]
        )
        channels = features[0].shape[1]
        out = features[0].new_zeros((rois.shape[0], channels, self.output_size, self.output_size))
        lvl = self.levels(rois[:, 1:])
        for k, (feat, stride) in enumerate(zip(features, self.strides)):
            idx = torch.nonzero(lvl == k).flatten()
            if idx.numel() == 0:
                continue
            pooled = roi_align(
                feat, rois[idx].to(feat.dtype), self.output_size, 1.0 / stride, self.sampling_ratio, aligned=True
            )
            out[idx] = pooled.to(out.dtype)
        return out


class RoIHead(nn.Module):
    """Box head of Faster R-CNN with the SSPNet reference settings."""

    def __init__(self, cfg: RoIConfig, wns: WNSConfig, in_channels: int, num_classes: int, strides: Sequence[int]) -> None:
        super().__init__()
        self.cfg, self.wns, self.num_classes = cfg, wns, num_classes
        self.pooler = LevelRoIAlign(strides, cfg.pool_size, cfg.sampling_ratio, cfg.finest_scale)
        self.box_head = TwoMLPHead(in_channels * cfg.pool_size**2, cfg.fc_dim)
        self.cls_score = nn.Linear(cfg.fc_dim, num_classes + 1)  # column 0 is background
        self.bbox_pred = nn.Linear(cfg.fc_dim, num_classes * 4)
        self.box_coder = det_utils.BoxCoder(weights=tuple(1.0 / s for s in cfg.box_stds))
        self.assigner = MaxIoUAssigner(cfg.pos_iou, cfg.neg_iou, cfg.pos_iou, low_quality=False)
        # mmdetection's Shared2FCBBoxHead initialisation
        for fc in (self.box_head.fc6, self.box_head.fc7):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(
        self,
        features: list[Tensor],
        proposals: list[Tensor],
        proposal_scores: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: Optional[list[dict[str, Tensor]]] = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            rois, labels, box_targets = self.select_training_samples(proposals, proposal_scores, targets)
            cls_logits, deltas = self.predict(features, rois)
            return [], self.loss(cls_logits, deltas, labels, box_targets)
        cls_logits, deltas = self.predict(features, proposals)
        return self.postprocess(cls_logits, deltas, proposals, image_sizes), {}

    def predict(self, features: list[Tensor], rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        x = self.box_head(self.pooler(features, rois))
        return self.cls_score(x), self.bbox_pred(x)

    def select_training_samples(
        self, proposals: list[Tensor], proposal_scores: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Add the GT boxes to the proposals (confidence 1), assign at IoU 0.5, sample 512 with
        25 % positives; negatives by WNS with the proposals' RPN objectness as confidence."""
        rois, labels, box_targets = [], [], []
        use_wns = self.wns.enabled and self.wns.rcnn
        for props, conf, target in zip(proposals, proposal_scores, targets):
            gt = target["boxes"].to(props.dtype)
            gt_labels = target["labels"]
            boxes = torch.cat([gt, props])
            conf = torch.cat([conf.new_ones(len(gt)), conf])
            assigned = self.assigner(gt, boxes)
            neg_logits = wns_logits(conf, assigned.max_iof, self.wns.lam) if use_wns else None
            pos, neg = sample(assigned.matched, self.cfg.batch_size_per_image, self.cfg.positive_fraction, neg_logits)
            keep = torch.cat([pos, neg])
            rois.append(boxes[keep])
            lab = torch.zeros(len(keep), dtype=torch.long, device=boxes.device)
            lab[: len(pos)] = gt_labels[assigned.matched[pos]]
            labels.append(lab)
            tgt = torch.zeros((len(keep), 4), dtype=boxes.dtype, device=boxes.device)
            if len(pos):
                tgt[: len(pos)] = self.box_coder.encode_single(gt[assigned.matched[pos]], boxes[pos])
            box_targets.append(tgt)
        return rois, labels, box_targets

    def loss(self, cls_logits: Tensor, deltas: Tensor, labels: list[Tensor], box_targets: list[Tensor]) -> dict[str, Tensor]:
        labels_t = torch.cat(labels)
        targets_t = torch.cat(box_targets)
        num = max(labels_t.numel(), 1)
        cls_loss = F.cross_entropy(cls_logits.float(), labels_t, reduction="sum") / num
        pos = torch.nonzero(labels_t > 0).flatten()
        per_class = deltas.float().view(deltas.shape[0], self.num_classes, 4)
        pred = per_class[pos, labels_t[pos] - 1]
        box_loss = F.l1_loss(pred, targets_t[pos].float(), reduction="sum") / num
        return {"loss_rcnn_cls": cls_loss, "loss_rcnn_box": box_loss}

    def postprocess(
        self, cls_logits: Tensor, deltas: Tensor, proposals: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Class probabilities and decoded boxes of the proposals, then :meth:`select`."""
        probs = F.softmax(cls_logits.float(), dim=-1)[:, 1:]
        boxes = self.box_coder.decode(deltas.float(), [p.float() for p in proposals]).view(-1, self.num_classes, 4)
        return self.select(probs, boxes, [len(p) for p in proposals], image_sizes)

    def select(
        self, probs: Tensor, boxes: Tensor, counts: list[int], image_sizes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """From (N, C) foreground probabilities and (N, C, 4) boxes of a batch (``counts`` per
        image): clip, keep scores > ``score_thresh``, linear soft-NMS per class, cap per image."""
        cand_boxes, cand_scores, cand = [], [], []
        for img_boxes, scores, size in zip(boxes.split(counts), probs.split(counts), image_sizes):
            img_boxes = box_ops.clip_boxes_to_image(img_boxes.reshape(-1, 4), size)
            labels = torch.arange(1, self.num_classes + 1, device=img_boxes.device).repeat(len(scores))
            scores = scores.reshape(-1)
            keep = scores > self.cfg.score_thresh
            img_boxes, scores, labels = img_boxes[keep], scores[keep], labels[keep]
            # classes never suppress each other: shift each class into a region of its own
            offset = labels.to(img_boxes.dtype)[:, None] * (max(size) + 1)
            cand_boxes.append(img_boxes + offset if self.num_classes > 1 else img_boxes)
            cand_scores.append(scores)
            cand.append((img_boxes, labels))
        kept = soft_nms(
            cand_boxes, cand_scores, self.cfg.soft_nms_iou, self.cfg.soft_nms_min_score, self.cfg.detections_per_img
        )
        out = []
        for (idx, sc), (img_boxes, labels), shifted, scores, size in zip(kept, cand, cand_boxes, cand_scores, image_sizes):
            boxes = img_boxes[idx]
            if self.cfg.box_voting_iou > 0 and len(idx):
                voted = vote_boxes(shifted[idx], shifted, img_boxes, scores, self.cfg.box_voting_iou)
                boxes = box_ops.clip_boxes_to_image(voted, size)  # a mean of clipped boxes may pass the edge by a rounding
            out.append({"boxes": boxes, "scores": sc, "labels": labels[idx]})
        return out


def vote_boxes(kept: Tensor, candidates: Tensor, boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Box voting: each kept box becomes the mean of ``boxes`` weighted by ``scores`` over the
    candidates overlapping it by IoU >= ``iou_threshold`` (``kept`` and ``candidates`` are the
    class-shifted boxes the overlaps are measured on, so classes never vote for each other; a kept
    box is one of the candidates, so it always has a vote)."""
    weights = (box_ops.box_iou(kept, candidates) >= iou_threshold).to(scores.dtype) * scores[None]
    return (weights @ boxes) / weights.sum(1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
