"""Region proposal network with the reference's assigner, Weighted Negative Sampling and L1 loss.

Reused from torchvision: the head (3x3 conv + ReLU, 1x1 objectness, 1x1 deltas), the box coder,
and proposal filtering (top-n per level, per-level NMS at 0.7, top-n overall), which already
match the official settings. Replaced: anchor generation (unrounded, see anchors.py), the
assignment (mmdetection's min_pos_iou rule), the sampler (WNS), and the box loss (L1 rather
than smooth L1 with beta 1/9).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

from sspnet_cli.config import RPNConfig, WNSConfig
from sspnet_cli.model.anchors import AnchorGenerator
from sspnet_cli.model.sampling import AnchorGrid, MaxIoUAssigner, sample, wns_logits


class RPN(RegionProposalNetwork):
    """Proposals from P2..P6 and, in training, the RPN losses."""

    def __init__(self, cfg: RPNConfig, wns: WNSConfig, anchors: AnchorGenerator, in_channels: int) -> None:
        super().__init__(
            anchors,  # type: ignore[arg-type]  # ours has the same job, a different signature
            RPNHead(in_channels, anchors.num_anchors_per_location),
            cfg.pos_iou,
            cfg.neg_iou,
            cfg.batch_size_per_image,
            cfg.positive_fraction,
            pre_nms_top_n={"training": cfg.pre_nms_top_n_train, "testing": cfg.pre_nms_top_n_test},
            post_nms_top_n={"training": cfg.post_nms_top_n_train, "testing": cfg.post_nms_top_n_test},
            nms_thresh=cfg.nms_iou,
        )
        self.cfg, self.wns = cfg, wns
        self.box_coder = det_utils.BoxCoder(weights=tuple(1.0 / s for s in cfg.box_stds))
        self.assigner = MaxIoUAssigner(cfg.pos_iou, cfg.neg_iou, cfg.min_pos_iou, low_quality=True)
        # torchvision's matcher and sampler are not used
        del self.proposal_matcher, self.fg_bg_sampler

    def forward(  # type: ignore[override]
        self,
        features: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: Optional[list[dict[str, Tensor]]] = None,
    ) -> tuple[list[Tensor], list[Tensor], dict[str, Tensor]]:
        """Returns per-image proposals, their objectness probabilities, and the losses."""
        objectness, deltas = self.head(features)
        per_level = self.anchor_generator.grid_anchors([tuple(f.shape[-2:]) for f in features], features[0].device)
        anchors = torch.cat(per_level)
        num_images = features[0].shape[0]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        # under autocast the head's outputs are fp16/bf16, and torchvision's decode casts the
        # anchors to their dtype: 8-10 bit mantissas would put proposals pixels off
        objectness, deltas = objectness.float(), deltas.float()
        boxes, scores = self._proposals(objectness, deltas, anchors, image_sizes, [len(a) for a in per_level])
        losses: dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            grid = self.anchor_generator.grid([tuple(f.shape[-2:]) for f in features])
            losses = self.loss(objectness.view(num_images, -1), deltas.view(num_images, -1, 4), anchors, targets, grid)
        return boxes, scores, losses

    def _proposals(
        self, objectness: Tensor, deltas: Tensor, anchors: Tensor, image_sizes: list[tuple[int, int]], counts: list[int]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """torchvision's proposal filtering, but only the top-n anchors of each level are decoded
        (torchvision decodes all ~330k of a 640x512 tile's anchors and then keeps 1,000 a level:
        about a tenth of a tile's CPU time). The same boxes: decoding is elementwise."""
        num_images = objectness.shape[0] // len(anchors)
        objectness = objectness.detach().reshape(num_images, -1)
        top = self._get_top_n_idx(objectness, counts)  # (images, kept), level by level, best first
        kept = [min(n, self.pre_nms_top_n()) for n in counts]
        rows = torch.arange(num_images, device=objectness.device)[:, None]
        picked = deltas.detach().reshape(num_images, -1, 4)[rows, top].reshape(-1, 4)
        proposals = self.box_coder.decode_single(picked, anchors[top].reshape(-1, 4)).view(num_images, -1, 4)
        # each level's slice is already its top n, which filter_proposals' own top-n keeps whole
        return self.filter_proposals(proposals, objectness[rows, top], image_sizes, kept)

    def loss(
        self,
        objectness: Tensor,
        deltas: Tensor,
        anchors: Tensor,
        targets: list[dict[str, Tensor]],
        grid: Optional[AnchorGrid] = None,
    ) -> dict[str, Tensor]:
        logits, labels, box_pred, box_target = [], [], [], []
        use_wns = self.wns.enabled and self.wns.rpn
        for obj, dlt, target in zip(objectness, deltas, targets):
            gt = target["boxes"]
            assigned = self.assigner(gt, anchors, grid)
            neg_logits = None
            if use_wns:
                conf = torch.sigmoid(obj.detach()) if self.wns.rpn_confidence else None
                neg_logits = wns_logits(conf, assigned.max_iof, self.wns.lam)
            pos, neg = sample(assigned.matched, self.cfg.batch_size_per_image, self.cfg.positive_fraction, neg_logits)
            logits.append(torch.cat([obj[pos], obj[neg]]))
            labels.append(torch.cat([torch.ones_like(obj[pos]), torch.zeros_like(obj[neg])]))
            box_pred.append(dlt[pos])
            box_target.append(self.box_coder.encode_single(gt[assigned.matched[pos]].to(anchors.dtype), anchors[pos]))
        num_sampled = max(sum(len(x) for x in logits), 1)
        cls_loss = F.binary_cross_entropy_with_logits(
            torch.cat(logits).float(), torch.cat(labels).float(), reduction="sum"
        ) / num_sampled
        box_loss = F.l1_loss(torch.cat(box_pred).float(), torch.cat(box_target).float(), reduction="sum") / num_sampled
        return {"loss_rpn_cls": cls_loss, "loss_rpn_box": box_loss}
