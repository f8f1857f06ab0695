"""The detectors' common frame, and Faster R-CNN with an SSPNet (or FPN) neck.

Every detector keeps torchvision's detection contract so other tools can wrap it:
``model(images, targets)`` with ``images`` a list of (3, H, W) float tensors in [0, 1] and
``targets`` a list of ``{"boxes": (N, 4) xyxy, "labels": (N,)}`` returns a dict of losses in
training mode and a list of ``{"boxes", "scores", "labels"}`` in eval mode. Unlike torchvision's
transform, nothing is resized: images are normalised and padded (right/bottom) to a multiple of
32, and boxes stay in input pixels. ``predict`` takes a ready (B, 3, H, W) batch (uint8 or float)
and can return the attention maps of the same forward pass.

:class:`PyramidDetector` holds what the three detectors share (input, backbone, neck, attention
loss, the contract); :class:`SSPNetDetector` is Faster R-CNN, and Cascade R-CNN
(``model/cascade.py``) is the same with a cascade of R-CNN heads.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
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
from sspnet_cli.model.views import View, views_for

Images = Union[Sequence[Tensor], Tensor]
#: per image, torchvision's detection output: {"boxes" (N, 4), "scores" (N,), "labels" (N,)} (the
#: engine turns them into :class:`sspnet_cli.types.Detections`)
BoxDicts = list[dict[str, Tensor]]


class PyramidDetector(nn.Module, ABC):
    """Backbone -> neck (SSPNet or FPN) giving P2..P6 and attention maps A2..A5; subclasses add
    their heads and implement :meth:`losses`, :meth:`_detect` and :meth:`_predict_multiscale`."""

    def __init__(self, cfg: ModelConfig, backbone_weights: Optional[str] = None) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        self.backbone = build_backbone(cfg.backbone, cfg.backbone_norm, cfg.frozen_stages, backbone_weights)
        self.neck = build_neck(cfg.neck, self.backbone.out_channels, cfg.neck_channels, cfg.neck_norm)
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
        if batch.device.type == "cpu":
            # oneDNN's CPU convolutions run faster on NHWC: 1.65x for backbone + neck on an AVX512
            # Xeon (benchmarks/README.md, bench_channels_last.py)
            batch = batch.contiguous(memory_format=torch.channels_last)
        pyramid, attentions = self.neck(self.backbone(batch))
        return list(pyramid.values()), attentions

    def forward(self, images: Images, targets: Optional[list[dict[str, Tensor]]] = None):
        batch, sizes = self.preprocess(images)
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            targets = [{k: v.to(batch.device) for k, v in t.items()} for t in targets]
            return self.losses(batch, sizes, targets)
        return self._detect(batch, sizes)[0]

    @abstractmethod
    def losses(self, batch: Tensor, sizes: list[tuple[int, int]], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The training losses of a preprocessed batch (targets on its device)."""

    @abstractmethod
    def _detect(self, batch: Tensor, sizes: list[tuple[int, int]]) -> tuple[BoxDicts, list[Tensor]]:
        """Detections (per image: boxes, scores, labels) and attention maps of a preprocessed batch (eval mode)."""

    @abstractmethod
    def _predict_multiscale(
        self, batch: Tensor, sizes: list[tuple[int, int]], views: Sequence[View], with_attention: bool
    ) -> tuple[BoxDicts, list[Tensor]]:
        """The multi-view (up-sampled, mirrored) test of a raw (B, 3, H, W) batch."""

    def attention_losses(
        self, batch: Tensor, attentions: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """The supervised attention loss of the SSPNet neck (nothing for FPN)."""
        if not attentions:
            return {}
        att_targets = attention_targets(
            [t["boxes"] for t in targets], tuple(batch.shape[-2:]), [tuple(a.shape[-2:]) for a in attentions]
        )
        return attention_loss(attentions, att_targets, self.cfg.attention)

    @torch.no_grad()
    def predict(
        self, batch: Tensor, scales: Sequence[float] = (1.0,), with_attention: bool = False, flip: bool = False
    ) -> tuple[list[dict[str, Tensor]], list[Tensor]]:
        """Detect on a (B, 3, H, W) batch of same-size patches (uint8 0-255 or float 0-1).

        ``scales`` other than ``(1,)`` runs the up-sampled test, ``flip`` adds each scale's
        mirror image (each detector's ``_predict_multiscale`` says how the views are merged).
        Attention maps (when asked) are those of the first scale, unmirrored.
        """
        sizes = [tuple(batch.shape[-2:])] * batch.shape[0]
        if tuple(scales) == (1.0,) and not flip:
            dets, att = self._detect(self._pad(self._normalise(batch)), sizes)  # type: ignore[arg-type]
            return dets, (att if with_attention else [])
        return self._predict_multiscale(batch, sizes, views_for(scales, flip), with_attention)  # type: ignore[arg-type]


class SSPNetDetector(PyramidDetector):
    """Faster R-CNN: backbone -> neck (SSPNet or FPN) -> RPN on P2..P6 -> RoI head on P2..P5."""

    def __init__(self, cfg: ModelConfig, backbone_weights: Optional[str] = None) -> None:
        super().__init__(cfg, backbone_weights)
        self.anchor_generator = AnchorGenerator(cfg.anchors.scales, cfg.anchors.ratios, cfg.anchors.strides)
        self.rpn = RPN(cfg.rpn, cfg.wns, self.anchor_generator, cfg.neck_channels)
        self.roi_heads = self.build_roi_heads(cfg)

    def build_roi_heads(self, cfg: ModelConfig) -> nn.Module:
        """The second stage on P2..P5: ``forward(levels, proposals, scores, sizes, targets)``."""
        return RoIHead(cfg.roi, cfg.wns, cfg.neck_channels, cfg.num_classes, cfg.anchors.strides[:4])

    def losses(self, batch: Tensor, sizes: list[tuple[int, int]], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        levels, attentions = self.features(batch)
        proposals, scores, losses = self.rpn(levels, sizes, targets)
        _, roi_losses = self.roi_heads(levels[:4], proposals, scores, sizes, targets)
        losses.update(roi_losses)
        losses.update(self.attention_losses(batch, attentions, targets))
        return losses

    def _detect(self, batch: Tensor, sizes: list[tuple[int, int]]) -> tuple[BoxDicts, list[Tensor]]:
        levels, attentions = self.features(batch)
        proposals, scores, _ = self.rpn(levels, sizes)
        detections, _ = self.roi_heads(levels[:4], proposals, scores, sizes)
        return detections, attentions

    def _predict_multiscale(
        self, batch: Tensor, sizes: list[tuple[int, int]], views: Sequence[View], with_attention: bool
    ) -> tuple[BoxDicts, list[Tensor]]:
        """The reference's up-sampled test: proposals from every view (mapped back to input
        pixels) are merged per image by NMS 0.7 (top 1000); the second stage runs on them in
        every view (:meth:`_score_scales`)."""
        normalised = self._normalise(batch)
        per_scale = []
        all_props: list[list[Tensor]] = [[] for _ in sizes]
        all_scores: list[list[Tensor]] = [[] for _ in sizes]
        first_att: list[Tensor] = []
        for view in views:
            scaled = view.image(normalised)
            ssizes = [tuple(scaled.shape[-2:])] * len(sizes)
            levels, att = self.features(self._pad(scaled))
            if not first_att:
                first_att = att
            props, pscores, _ = self.rpn(levels, ssizes)  # type: ignore[arg-type]
            for i, (p, sc) in enumerate(zip(props, pscores)):
                all_props[i].append(view.to_input(p, scaled.shape[-1]))
                all_scores[i].append(sc)
            per_scale.append((view, levels, ssizes))
        merged = []
        for props, scs in zip(all_props, all_scores):
            boxes, sc = torch.cat(props), torch.cat(scs)
            keep = nms(boxes, sc, self.cfg.rpn.nms_iou)
            merged.append(boxes[keep[: self.cfg.rpn.post_nms_top_n_test]])
        return self._score_scales(per_scale, merged, sizes), (first_att if with_attention else [])

    def _score_scales(
        self, per_scale: list[tuple[View, list[Tensor], list[tuple[int, int]]]], merged: list[Tensor], sizes: list[tuple[int, int]]
    ) -> BoxDicts:
        """From each view's (view, pyramid, image sizes) and the merged proposals: each view's
        R-CNN head scores and regresses them; class probabilities and boxes (in input pixels)
        are averaged over views, then the score threshold, soft-NMS and the cap."""
        heads = self.roi_heads
        probs_sum, boxes_sum = None, None
        for view, levels, vsizes in per_scale:
            width = vsizes[0][1]
            rois = [view.to_view(m, width) for m in merged]
            logits, deltas = heads.predict(levels[:4], rois)
            probs = F.softmax(logits.float(), dim=-1)[:, 1:]
            boxes = view.to_input(heads.box_coder.decode(deltas.float(), rois).view(-1, heads.num_classes, 4), width)
            probs_sum = probs if probs_sum is None else probs_sum + probs
            boxes_sum = boxes if boxes_sum is None else boxes_sum + boxes
        n = float(len(per_scale))
        return heads.select(probs_sum / n, boxes_sum / n, [len(m) for m in merged], sizes)
