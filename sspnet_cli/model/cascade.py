"""Cascade R-CNN with an SSPNet (or FPN) neck: the Faster R-CNN RPN, then R-CNN stages of rising
IoU threshold (0.5, 0.6, 0.7) that each refine the previous stage's boxes (docs/model.md).

Reused: the whole Faster R-CNN frame (``SSPNetDetector``: input, backbone, neck, RPN, attention
loss, the up-sampled test's proposal merging) and, per stage, ``RoIHead`` (aligned level
RoIAlign, two FC-1024, the sampler with WNS, the score threshold + soft-NMS + cap of
``select``) with torchvision's box coder. Written here: class-agnostic regression, the training
cascade (stage t's regressed boxes, detached and without the GT boxes that were added to its
proposals, become stage t+1's proposals, with stage t's score as their WNS confidence) and the
test cascade (refine through the stages; the class score is the softmax of the stages' mean
logits, as the official mmdetection code computes it).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import boxes as box_ops

from sspnet_cli.config import ModelConfig, RoIConfig, WNSConfig
from sspnet_cli.model.detector import BoxDicts, SSPNetDetector
from sspnet_cli.model.roi_heads import RoIHead
from sspnet_cli.model.views import View


class CascadeStage(RoIHead):
    """One R-CNN stage: ``RoIHead`` with its own IoU threshold (positive = negative, no
    low-quality matches) and box coder stds, and one box per RoI whatever its class."""

    def __init__(
        self,
        cfg: RoIConfig,
        wns: WNSConfig,
        in_channels: int,
        num_classes: int,
        strides: Sequence[int],
        iou: float,
        box_stds: Sequence[float],
    ) -> None:
        stage_cfg = replace(cfg, pos_iou=iou, neg_iou=iou, box_stds=tuple(box_stds))
        super().__init__(stage_cfg, wns, in_channels, num_classes, strides)
        self.bbox_pred = nn.Linear(cfg.fc_dim, 4)  # class-agnostic
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.bbox_pred.bias)

    def decode(self, deltas: Tensor, rois: list[Tensor], image_sizes: list[tuple[int, int]]) -> list[Tensor]:
        """The regressed boxes of each image's RoIs, clipped to the image."""
        boxes = self.box_coder.decode(deltas.float(), [r.float() for r in rois]).view(-1, 4)
        return [box_ops.clip_boxes_to_image(b, size) for b, size in zip(boxes.split([len(r) for r in rois]), image_sizes)]

    def loss(self, cls_logits: Tensor, deltas: Tensor, labels: list[Tensor], box_targets: list[Tensor]) -> dict[str, Tensor]:
        """CE over the sampled RoIs and L1 over the positives' class-agnostic deltas, both
        normalised by the number of sampled RoIs."""
        labels_t = torch.cat(labels)
        targets_t = torch.cat(box_targets)
        num = max(labels_t.numel(), 1)
        cls_loss = F.cross_entropy(cls_logits.float(), labels_t, reduction="sum") / num
        pos = labels_t > 0
        box_loss = F.l1_loss(deltas.float()[pos], targets_t[pos].float(), reduction="sum") / num
        return {"loss_cls": cls_loss, "loss_box": box_loss}


class CascadeRoIHeads(nn.Module):
    """The R-CNN stages on P2..P5, with the same call as ``RoIHead``:
    ``forward(levels, proposals, proposal_scores, image_sizes, targets)``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.cascade
        self.loss_weights = tuple(c.stage_loss_weights)
        self.stages = nn.ModuleList(
            CascadeStage(cfg.roi, cfg.wns, cfg.neck_channels, cfg.num_classes, cfg.anchors.strides[:4], iou, stds)
            for iou, stds in zip(c.stage_ious, c.stage_box_stds)
        )
        self.num_classes = cfg.num_classes

    def forward(
        self,
        features: list[Tensor],
        proposals: list[Tensor],
        proposal_scores: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: Optional[list[dict[str, Tensor]]] = None,
    ) -> tuple[BoxDicts, dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            return [], self.losses(features, proposals, proposal_scores, image_sizes, targets)
        probs, boxes = self.scores_and_boxes(features, proposals, image_sizes)
        return self.stages[-1].select(probs, boxes, [len(p) for p in proposals], image_sizes), {}

    def losses(
        self,
        features: list[Tensor],
        proposals: list[Tensor],
        confidence: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]],
    ) -> dict[str, Tensor]:
        """Every stage's weighted losses (``loss_rcnn{t}_cls``, ``loss_rcnn{t}_box``, t from 1).

        Stage t samples from its proposals plus the GT boxes (WNS confidence: RPN objectness for
        stage 1, then the previous stage's foreground probability; GT boxes 1). Its regressed
        sampled RoIs, detached, minus the GT boxes, are the next stage's proposals.
        """
        losses: dict[str, Tensor] = {}
        last = len(self.stages) - 1
        for t, (stage, weight) in enumerate(zip(self.stages, self.loss_weights)):
            rois, labels, box_targets = stage.select_training_samples(proposals, confidence, targets)
            cls_logits, deltas = stage.predict(features, rois)
            for name, value in stage.loss(cls_logits, deltas, labels, box_targets).items():
                losses[name.replace("loss_", f"loss_rcnn{t + 1}_")] = weight * value
            if t == last:
                break
            with torch.no_grad():
                refined = stage.decode(deltas.detach(), rois, image_sizes)
                fg = 1.0 - F.softmax(cls_logits.detach().float(), dim=-1)[:, 0]
                proposals, confidence = [], []
                for boxes, roi, conf, target in zip(refined, rois, fg.split([len(r) for r in rois]), targets):
                    keep = ~_is_gt(roi, target["boxes"])
                    proposals.append(boxes[keep])
                    confidence.append(conf[keep])
        return losses

    def scores_and_boxes(
        self, features: list[Tensor], proposals: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> tuple[Tensor, Tensor]:
        """Test cascade for a batch: each stage scores its input boxes and regresses them for the
        next. Returns (N, C) foreground probabilities (softmax of the stages' mean logits) and
        (N, C, 4) final boxes (the last stage's regression, the same box for every class)."""
        rois = proposals
        logit_sum: Optional[Tensor] = None
        for stage in self.stages:
            cls_logits, deltas = stage.predict(features, rois)
            logit_sum = cls_logits.float() if logit_sum is None else logit_sum + cls_logits.float()
            rois = stage.decode(deltas, rois, image_sizes)
        assert logit_sum is not None
        probs = F.softmax(logit_sum / len(self.stages), dim=-1)[:, 1:]
        boxes = torch.cat(rois) if rois else probs.new_zeros((0, 4))
        return probs, boxes[:, None, :].expand(-1, self.num_classes, 4)


def _is_gt(rois: Tensor, gt: Tensor) -> Tensor:
    """Which sampled RoIs are GT boxes (the sampler put the GT boxes among the proposals). A
    proposal identical to a GT box counts as one, which changes nothing: the next stage adds
    every GT box again."""
    if gt.numel() == 0 or rois.numel() == 0:
        return torch.zeros(len(rois), dtype=torch.bool, device=rois.device)
    return (rois[:, None, :] == gt.to(rois.dtype)[None, :, :]).all(-1).any(1)


class CascadeRCNN(SSPNetDetector):
    """Cascade R-CNN: backbone -> neck -> RPN on P2..P6 -> R-CNN stages on P2..P5."""

    def build_roi_heads(self, cfg: ModelConfig) -> nn.Module:
        return CascadeRoIHeads(cfg)

    def _score_scales(
        self, per_scale: list[tuple[View, list[Tensor], list[tuple[int, int]]]], merged: list[Tensor], sizes: list[tuple[int, int]]
    ) -> BoxDicts:
        """The up-sampled test, as the official aug test: in every view the whole cascade runs on
        the merged proposals; its final boxes (mapped back) and class probabilities are averaged
        over views, then the score threshold, soft-NMS and the cap."""
        probs_sum, boxes_sum = None, None
        for view, levels, view_sizes in per_scale:
            width = view_sizes[0][1]
            probs, boxes = self.roi_heads.scores_and_boxes(levels[:4], [view.to_view(m, width) for m in merged], view_sizes)
            boxes = view.to_input(boxes, width)
            probs_sum = probs if probs_sum is None else probs_sum + probs
            boxes_sum = boxes if boxes_sum is None else boxes_sum + boxes
        n = float(len(per_scale))
        return self.roi_heads.stages[-1].select(probs_sum / n, boxes_sum / n, [len(m) for m in merged], sizes)
