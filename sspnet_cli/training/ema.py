"""An exponential moving average of the model's weights, validated and kept instead of the raw ones.

At a constant learning rate the raw weights of a small detector wander from step to step; on
TinyPerson-RF two checkpoints one epoch apart differed by up to 6 points of valid AP50-tiny
(docs/training.md). The average over the last ~``1 / (1 - decay)`` steps follows the same run
with that noise smoothed out (as YOLOv5 and timm keep one). Every floating-point tensor of the
state dict is averaged, BatchNorm running statistics included; integer buffers are copied.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


class WeightEMA:
    """``ema = d * ema + (1 - d) * weights`` after every optimiser step, with the decay ramped
    up as ``d = decay * (1 - exp(-updates / ramp))`` so that the first steps, far from any good
    weights, are soon forgotten."""

    def __init__(self, model: nn.Module, decay: float = 0.999, ramp: float = 200.0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay, self.ramp = decay, ramp
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        source = model.state_dict()
        for name, value in self.model.state_dict().items():
            new = source[name].detach()
            if value.is_floating_point():
                value.mul_(d).add_(new.to(value.dtype), alpha=1.0 - d)
            else:
                value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        return {"state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "updates": self.updates, "decay": self.decay, "ramp": self.ramp}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["state_dict"])
        self.updates = int(state["updates"])
        self.decay, self.ramp = float(state["decay"]), float(state["ramp"])
