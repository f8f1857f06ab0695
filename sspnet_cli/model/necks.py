"""Necks: C2..C5 -> P2..P6 (strides 4..64), plus the SSPNet attention maps.

Both necks share one interface: ``forward(feats) -> (pyramid, attentions)`` where ``pyramid`` is
an ordered dict ``{"p2": ..., "p6": ...}`` and ``attentions`` the list ``[A2, A3, A4, A5]`` of
(B, 1, h, w) maps in (0, 1) (empty for FPN).

The SSPNet neck follows the official implementation step by step (docs/model.md):
laterals -> CAM (context attention) -> SEM (scale enhancement) -> SSM (scale selection,
top-down gated) -> output convs scaled by (1 + A) -> P6 by subsampling. The official code
applies SEM twice (on the laterals and on the outputs); the paper's equation (2) describes it
once. We follow the code, whose numbers the paper reports.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEVELS = ("p2", "p3", "p4", "p5", "p6")


def _xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero bias for every conv, as the official neck does."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _upsample_to(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


def _with_p6(outs: list[Tensor]) -> "OrderedDict[str, Tensor]":
    # P6 = P5 subsampled by 2 (max-pool with kernel 1), no conv
    outs = outs + [F.max_pool2d(outs[-1], kernel_size=1, stride=2)]
    return OrderedDict(zip(LEVELS, outs))


class FPN(nn.Module):
    """The baseline Feature Pyramid Network (laterals, top-down sums, 3x3 output convs)."""

    has_attention = False

    def __init__(self, in_channels: tuple[int, ...], out_channels: int = 256) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        _xavier_init(self)

    def forward(self, feats: list[Tensor]) -> tuple["OrderedDict[str, Tensor]", list[Tensor]]:
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for k in range(len(laterals) - 1, 0, -1):
            laterals[k - 1] = laterals[k - 1] + _upsample_to(laterals[k], laterals[k - 1])
        outs = [conv(x) for conv, x in zip(self.output_convs, laterals)]
        return _with_p6(outs), []


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, 3x3 dilation 2, 3x3 dilation 5 and a global-pool
    branch, each ReLU'd, concatenated (4 x ``branch_channels``)."""

    def __init__(self, in_channels: int, branch_channels: int, dilations: tuple[int, ...] = (1, 2, 5)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, branch_channels, 1)
            if d == 1
            else nn.Conv2d(in_channels, branch_channels, 3, padding=d, dilation=d)
            for d in dilations
        )
        self.pool_conv = nn.Conv2d(in_channels, branch_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        outs = [F.relu(b(x)) for b in self.branches]
        pooled = F.relu(self.pool_conv(F.adaptive_avg_pool2d(x, 1)))
        outs.append(pooled.expand_as(outs[-1]))
        return torch.cat(outs, dim=1)


class ContextAttention(nn.Module):
    """CAM: context from all levels gathered at P2, then a chain of convolutions (stride 1 for
    P2, 2 for each later level) with a sigmoid head per link gives A2..A5."""

    def __init__(self, channels: int = 256, num_levels: int = 4, norm: str = "bn") -> None:
        super().__init__()
        self.context = nn.Sequential(
            nn.Conv2d(channels * num_levels, channels, 3, padding=1),
            ASPP(channels, channels // 4),
            nn.Conv2d(channels, channels, 3, padding=1),
            context_norm(norm, channels),
            nn.ReLU(inplace=False),
        )
        self.chain = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=1 if k == 0 else 2, padding=1) for k in range(num_levels)
        )
        self.heads = nn.ModuleList(nn.Conv2d(channels, 1, 3, padding=1) for _ in range(num_levels))

    def forward(self, laterals: list[Tensor]) -> list[Tensor]:
        gathered = torch.cat([laterals[0]] + [_upsample_to(x, laterals[0]) for x in laterals[1:]], dim=1)
        f = self.context(gathered)
        attentions = []
        for link, head in zip(self.chain, self.heads):
            f = link(f)  # no activation between links, as in the official code
            attentions.append(torch.sigmoid(head(f)))
        return attentions


def context_norm(norm: str, channels: int) -> nn.Module:
    """The CAM's one normalisation layer: ``"bn"`` (BatchNorm, the official code) or ``"gn"``
    (GroupNorm, 32 groups or fewer when the channels do not divide: independent of the batch
    size, for small per-GPU batches)."""
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "gn":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown neck norm {norm!r}")


def scale_selection(laterals: list[Tensor], attentions: list[Tensor]) -> list[Tensor]:
    """SSM, top-down: ``L[k-1] += (A[k-1] * up(A[k])) * up(L[k])`` for k = top..1.

    There is no ungated sum: deeper features reach a shallower level only where both levels'
    attention is high. ``L[k]`` already holds what came down from above when it is passed on.
    """
    out = list(laterals)
    for k in range(len(out) - 1, 0, -1):
        gate = attentions[k - 1] * _upsample_to(attentions[k], attentions[k - 1])
        out[k - 1] = out[k - 1] + gate * _upsample_to(out[k], out[k - 1])
    return out


class SSPNeck(nn.Module):
    """The Scale Selection Pyramid neck (CAM + SEM + SSM)."""

    has_attention = True

    def __init__(self, in_channels: tuple[int, ...], out_channels: int = 256, norm: str = "bn") -> None:
        super().__init__()
        self.out_channels = out_channels
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.cam = ContextAttention(out_channels, len(in_channels), norm)
        self.output_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        _xavier_init(self)

    def forward(self, feats: list[Tensor]) -> tuple["OrderedDict[str, Tensor]", list[Tensor]]:
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        attentions = self.cam(laterals)
        laterals = [(1 + a) * x for a, x in zip(attentions, laterals)]  # SEM
        laterals = scale_selection(laterals, attentions)  # SSM
        outs = [(1 + a) * conv(x) for a, conv, x in zip(attentions, self.output_convs, laterals)]  # SEM again
        return _with_p6(outs), attentions


def build_neck(name: str, in_channels: tuple[int, ...], out_channels: int = 256, norm: str = "bn") -> nn.Module:
    if name == "sspnet":
        return SSPNeck(in_channels, out_channels, norm)
    if name == "fpn":
        return FPN(in_channels, out_channels)
    raise ValueError(f"unknown neck {name!r}")
