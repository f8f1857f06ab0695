"""Build a detector from its configuration (the one place that knows every detector kind)."""
from __future__ import annotations

from typing import Optional

from torch import nn

from sspnet_cli.config import ModelConfig
from sspnet_cli.model.cascade import CascadeRCNN
from sspnet_cli.model.detector import SSPNetDetector
from sspnet_cli.model.retinanet import RetinaNet

_DETECTORS = {"faster_rcnn": SSPNetDetector, "cascade_rcnn": CascadeRCNN, "retinanet": RetinaNet}


def build_from_config(cfg: Optional[ModelConfig] = None, backbone_weights: Optional[str] = None) -> nn.Module:
    """The detector ``cfg`` describes (default: SSPNet-R50 Faster R-CNN); backbone initialised from
    a local ImageNet state-dict file when ``backbone_weights`` is given (never downloaded)."""
    cfg = (cfg or ModelConfig()).validate()
    if cfg.detector not in _DETECTORS:
        raise ValueError(f"unknown detector {cfg.detector!r}")
    return _DETECTORS[cfg.detector](cfg, backbone_weights)
