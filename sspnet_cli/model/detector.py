"""Faster R-CNN with an SSPNet (or FPN) neck.

The model keeps torchvision's detection contract so other tools can wrap it:
``model(images, targets)`` with ``images`` a list of (3, H, W) float tensors in [0, 1] and
``targets`` a list of ``{"boxes": (N, 4) xyxy, "labels": (N,)}`` returns a dict of losses in
training mode and a list of ``{"boxes", "scores", "labels"}`` in eval mode. Unlike torchvision's
transform, nothing is resized: images are normalised and padded (right/bottom) to a multiple of
32, and boxes stay in input pixels. ``predict`` takes a ready (B, 3, H, W) batch (uint8 or float)
and can return the attention maps of the same forward pass.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from sspnet_cli.config import ModelConfig
from sspnet_cli.model.anchors import AnchorGenerator
from sspnet_cli.model.attention import attention_loss, attention_targets
from sspnet_cli.model.backbones import build_backbone
from sspnet_cli.model.necks import build_neck
from sspnet_cli.model.roi_heads import RoIHead
from sspnet_cli.model.rpn import RPN

Images = Union[Sequence[Tensor], Tensor]


class SSPNetDetector(nn.Module):
    """Backbone -> neck (SSPNet or FPN) -> RPN on P2..P6 -> RoI head on P2..P5."""

    def __init__(self, cfg: ModelConfig, backbone_weights: Optional[str] = None) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        self.backbone = build_backbone(cfg.backbone, cfg.backbone_norm, cfg.frozen_stages, backbone_weights)
        self.neck = build_neck(cfg.neck, self.backbone.out_channels, cfg.neck_channels)
        self.anchor_generator = AnchorGenerator(cfg.anchors.scales, cfg.anchors.ratios, cfg.anchors.strides)
        self.rpn = RPN(cfg.rpn, cfg.wns, self.anchor_generator, cfg.neck_channels)
        self.roi_heads = RoIHead(cfg.roi, cfg.wns, cfg.neck_channels, cfg.num_classes, cfg.anchors.strides[:4])
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1), persistent=False)

    # -- input ------------------------------------------------------------------------------
    def preprocess(self, images: Images) -> tuple[Tensor, list[tuple[int, int]]]:
        """Normalise and pad to a multiple of ``size_divisible``. A (B, 3, H, W) tensor may be
        uint8 (0-255) or float (0-1); a list holds float (3, H, W) tensors in [0, 1]."""
        if isinstance(images, Tensor) and images.dim() == 4:
            sizes = [tuple(images.shape[-2:])] * images.shape[0]
            batch = self._normalise(images)
            return self._pad(batch), sizes  # type: ignore[return-value]
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        d = self.cfg.size_divisible
        H = -(-max(h for h, _ in sizes) // d) * d
        W = -(-max(w for _, w in sizes) // d) * d
        batch = self.pixel_mean.new_zeros((len(images), 3, H, W))
        for i, im in enumerate(images):
            batch[i, :, : im.shape[-2], : im.shape[-1]] = self._normalise(im[None])[0]
        return batch, sizes

    def _normalise(self, x: Tensor) -> Tensor:
        x = x.to(self.pixel_mean.device)
        x = x.float() if x.dtype == torch.uint8 else x.float() * 255.0
        return (x - self.pixel_mean) / self.pixel_std

    def _pad(self, batch: Tensor) -> Tensor:
        d = self.cfg.size_divisible
        h, w = batch.shape[-2:]
        ph, pw = (-h) % d, (-w) % d
        return F.pad(batch, (0, pw, 0, ph)) if ph or pw else batch

    # -- forward ----------------------------------------------------------------------------
    def features(self, batch: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Pyramid P2..P6 and attention maps A2..A5 (empty for FPN) of a preprocessed batch."""
        pyramid, attentions = self.neck(self.backbone(batch))
        return list(pyramid.values()), attentions

    def forward(self, images: Images, targets: Optional[list[dict[str, Tensor]]] = None):
        batch, sizes = self.preprocess(images)
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            return self.losses(batch, sizes, targets)
        return self._detect(batch, sizes)[0]

    def losses(self, batch: Tensor, sizes: list[tuple[int, int]], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        targets = [{k: v.to(batch.device) for k, v in t.items()} for t in targets]
        levels, attentions = self.features(batch)
        proposals, scores, losses = self.rpn(levels, sizes, targets)
        _, roi_losses = self.roi_heads(levels[:4], proposals, scores, sizes, targets)
        losses.update(roi_losses)
        if attentions:
            att_targets = attention_targets(
                [t["boxes"] for t in targets], tuple(batch.shape[-2:]), [tuple(a.shape[-2:]) for a in attentions]
            )
            losses.update(attention_loss(attentions, att_targets, self.cfg.attention))
        return losses

    def _detect(self, batch: Tensor, sizes: list[tuple[int, int]]) -> tuple[list[dict[str, Tensor]], list[Tensor]]:
        levels, attentions = self.features(batch)
        proposals, scores, _ = self.rpn(levels, sizes)
        detections, _ = self.roi_heads(levels[:4], proposals, scores, sizes)
        return detections, attentions

    @torch.no_grad()
    def predict(
        self, batch: Tensor, scales: Sequence[float] = (1.0,), with_attention: bool = False
    ) -> tuple[list[dict[str, Tensor]], list[Tensor]]:
        """Detect on a (B, 3, H, W) batch of same-size patches (uint8 0-255 or float 0-1).

        ``scales`` other than ``(1,)`` runs the reference's up-sampled test: proposals from every
        scale (mapped back to input pixels) are merged per image by NMS 0.7 (top 1000), each
        scale's R-CNN head scores and regresses them, boxes and class scores are averaged over
        scales, and the usual score threshold, soft-NMS and cap follow. Attention maps (when
        asked) are those of the first scale.
        """
        sizes = [tuple(batch.shape[-2:])] * batch.shape[0]
        if tuple(scales) == (1.0,):
            dets, att = self._detect(self._pad(self._normalise(batch)), sizes)  # type: ignore[arg-type]
            return dets, (att if with_attention else [])
        return self._predict_multiscale(batch, sizes, scales, with_attention)  # type: ignore[arg-type]

    def _predict_multiscale(
        self, batch: Tensor, sizes: list[tuple[int, int]], scales: Sequence[float], with_attention: bool
    ) -> tuple[list[dict[str, Tensor]], list[Tensor]]:
        normalised = self._normalise(batch)
        per_scale = []
        all_props: list[list[Tensor]] = [[] for _ in sizes]
        all_scores: list[list[Tensor]] = [[] for _ in sizes]
        first_att: list[Tensor] = []
        for s in scales:
            scaled = normalised if s == 1 else F.interpolate(normalised, scale_factor=s, mode="bilinear", align_corners=False)
            ssizes = [tuple(scaled.shape[-2:])] * len(sizes)
            levels, att = self.features(self._pad(scaled))
            if not first_att:
                first_att = att
            props, pscores, _ = self.rpn(levels, ssizes)
            for i, (p, sc) in enumerate(zip(props, pscores)):
                all_props[i].append(p / s)
                all_scores[i].append(sc)
            per_scale.append((s, levels))
        merged = []
        for props, scs in zip(all_props, all_scores):
            boxes, sc = torch.cat(props), torch.cat(scs)
            keep = nms(boxes, sc, self.cfg.rpn.nms_iou)
            merged.append(boxes[keep[: self.cfg.rpn.post_nms_top_n_test]])
        heads = self.roi_heads
        probs_sum, boxes_sum = None, None
        for s, levels in per_scale:
            rois = [m * s for m in merged]
            logits, deltas = heads.predict(levels[:4], rois)
            probs = F.softmax(logits.float(), dim=-1)[:, 1:]
            boxes = heads.box_coder.decode(deltas.float(), rois).view(-1, heads.num_classes, 4) / s
            probs_sum = probs if probs_sum is None else probs_sum + probs
            boxes_sum = boxes if boxes_sum is None else boxes_sum + boxes
        n = float(len(scales))
        dets = heads.select(probs_sum / n, boxes_sum / n, [len(m) for m in merged], sizes)
        return dets, (first_att if with_attention else [])

