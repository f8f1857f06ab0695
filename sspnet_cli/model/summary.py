"""The model's architecture in words and numbers (what ``sspnet info`` prints)."""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from sspnet_cli.config import ModelConfig, describe_preset, model_test_flip, model_test_scales, preset_of, training_frame_size

DETECTOR_NAMES = {"faster_rcnn": "Faster R-CNN", "cascade_rcnn": "Cascade R-CNN", "retinanet": "RetinaNet"}
NECK_NAMES = {"sspnet": "SSPNet (CAM + SEM + SSM)", "fpn": "FPN"}
PATCH = (640, 512)  # width, height used to show the pyramid's sizes


def count_parameters(module: Optional[nn.Module]) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def model_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The detector's parts in order, only those it has: backbone, neck, then rpn and roi_head
    (Faster and Cascade R-CNN; Cascade's roi_head holds every stage) or head (RetinaNet)."""
    found = {
        "backbone": getattr(model, "backbone", None),
        "neck": getattr(model, "neck", None),
        "rpn": getattr(model, "rpn", None),
        "roi_head": getattr(model, "roi_heads", None),
        "head": getattr(model, "head", None),
    }
    return {name: part for name, part in found.items() if part is not None}


def used_by(parts: dict[str, nn.Module], level: int) -> str:
    """Which heads read pyramid level ``level`` (0 = P2): the R-CNN heads pool from P2..P5 only."""
    users = [name for name in ("rpn", "head") if name in parts]
    if "roi_head" in parts and level < 4:
        users.append("roi_head")
    return ", ".join(users)


def describe(model: nn.Module, meta: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """A JSON-ready description: parts, parameter counts, pyramid, anchors, settings, metadata."""
    cfg: ModelConfig = model.cfg  # type: ignore[assignment]
    parts = model_parts(model)
    params = {name: count_parameters(m) for name, m in parts.items()}
    params["total"] = count_parameters(model)
    params["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    backbone = parts.get("backbone")
    w, h = PATCH
    levels = [
        {
            "name": f"P{k + 2}",
            "stride": stride,
            "size_on_640x512": [-(-h // stride), -(-w // stride)],
            "used_by": used_by(parts, k),
        }
        for k, stride in enumerate(cfg.anchors.strides)
    ]
    anchor_gen = model.anchor_generator
    anchors = {
        "per_location": anchor_gen.num_anchors_per_location,
        "scales": list(cfg.anchors.scales),
        "ratios_h_over_w": list(cfg.anchors.ratios),
        "sizes_wh": {
            f"P{k + 2}": [[round(aw, 2), round(ah, 2)] for aw, ah in sizes]
            for k, sizes in enumerate(anchor_gen.sizes())
        },
    }
    return {
        "detector": DETECTOR_NAMES.get(cfg.detector, cfg.detector),
        "backbone": {
            "name": cfg.backbone,
            "channels_c2_c5": list(getattr(backbone, "out_channels", [])),
            "norm": cfg.backbone_norm,
            "frozen_stages": cfg.frozen_stages,
            "initial_weights": _initial_weights(backbone, meta),
        },
        "neck": {"name": NECK_NAMES.get(cfg.neck, cfg.neck), "channels": cfg.neck_channels},
        "roi_head_fc_dim": cfg.roi.fc_dim if cfg.detector != "retinanet" else None,
        "preset": _preset(cfg),
        "parameters": params,
        "pyramid_levels": levels,
        "anchors": anchors,
        # frames resized to this while training (``--frame-size``); eval repeats it, detect does not
        "training_frame_size": training_frame_size(meta),
        # the test scales detect and eval use by default (--scales model)
        "test_scales": list(model_test_scales(meta)),
        # and whether each scale also runs mirrored (--flip model)
        "test_flip": model_test_flip(meta),
        "config": cfg.to_dict(),
        "checkpoint": meta,
    }


def _preset(cfg: ModelConfig) -> str:
    """Which ``sspnet train --model`` preset the widths are, and what it sets."""
    name = preset_of(cfg)
    return describe_preset(name) if name else "custom (no preset has these widths)"


def _initial_weights(backbone: object, meta: Optional[dict]) -> str:
    """Where the backbone's weights started from: the training metadata of a checkpoint (its
    weights were loaded over a freshly built backbone, so the module itself cannot tell), else
    what the backbone was built from."""
    if meta is not None:
        return str(meta.get("backbone_init") or "not recorded in the checkpoint")
    return str(getattr(backbone, "init_source", "unknown"))
