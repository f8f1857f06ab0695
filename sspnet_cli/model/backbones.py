"""Backbones that give C2..C5 (strides 4, 8, 16, 32) to the neck.

ResNet-18/34/50/101 (torchvision layout) and MobileNetV2 (``features[:4]``, ``[:7]``,
``[:14]``, ``[:19]``). Normalisation follows the official SSPNet code (``norm_eval=True``):
every BatchNorm stays in eval mode, so running statistics never update, while the affine
weight/bias of the stages after the frozen ones still train. torchvision's FrozenBatchNorm2d
would also freeze the affine part; we keep it trainable to match the reference. With
``backbone_norm="bn"`` (training from scratch, where no ImageNet statistics exist) BN trains.

Initial weights only ever come from a local file; nothing is downloaded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn
from torchvision.models import mobilenet_v2, resnet

from sspnet_cli.errors import SSPNetError

RESNET_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "resnet101": (256, 512, 1024, 2048),
}
MOBILENET_V2_CHANNELS = (24, 32, 96, 1280)
MOBILENET_V2_SPLITS = (4, 7, 14, 19)

# The MobileNetV2 ImageNet file shipped in weights/ (see weights/README-mobilenet_v2.md).
MOBILENET_V2_FILE = "mobilenet_v2_imagenet_features.pt"
MOBILENET_V2_SHA256 = "be96c99a6152c52f9c71b5ac7652b182ac37ce442b2a5bc4e10d956a8663bac7"
# The backbone of an SSDLite person detector (COCO, then VOC person), MIT; trained on x*2/255-1.
MOBILENET_V2_PERSON_FILE = "mobilenet_v2_ssdlite_person_features.pt"
MOBILENET_V2_PERSON_SHA256 = "039589e14586b0bac403679ea5858629ba77d33bf53f1815d6a85d740efe8c02"

IMAGENET_NORM = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
SYMMETRIC_NORM = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))


@dataclass(frozen=True)
class KnownWeights:
    """A backbone start whose provenance we know: its name for ``--backbone-weights``, file,
    sha256 and the input normalisation (RGB mean, std on the 0-255 scale) it was trained with."""

    name: str
    file: str
    sha256: str
    norm: tuple[tuple[float, float, float], tuple[float, float, float]]
    description: str


KNOWN_WEIGHTS = (
    KnownWeights("imagenet", MOBILENET_V2_FILE, MOBILENET_V2_SHA256, IMAGENET_NORM, "MobileNetV2, ImageNet-1k classification"),
    KnownWeights(
        "person", MOBILENET_V2_PERSON_FILE, MOBILENET_V2_PERSON_SHA256, SYMMETRIC_NORM,
        "MobileNetV2 of an SSDLite person detector (COCO, then VOC person)",
    ),
)


def known_weights(path: str | Path) -> Optional[KnownWeights]:
    """The :class:`KnownWeights` entry whose sha256 ``path`` has, else None."""
    digest = sha256_of(path)
    return next((k for k in KNOWN_WEIGHTS if k.sha256 == digest), None)


class Backbone(nn.Module):
    """A feature extractor returning ``[C2, C3, C4, C5]``.

    ``stages`` are applied in order; ``frozen_stages`` of them (counting the stem as part of the
    first) get ``requires_grad=False`` and stay in eval mode. With ``norm_eval`` every BatchNorm
    stays in eval mode whatever ``train()`` says.
    """

    def __init__(
        self,
        name: str,
        stages: list[nn.Module],
        out_channels: tuple[int, ...],
        frozen_stages: int,
        norm_eval: bool,
    ) -> None:
        super().__init__()
        self.name = name
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(out_channels)
        self.strides = (4, 8, 16, 32)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.init_source = "random initialisation"
        self._freeze()

    def _freeze(self) -> None:
        for stage in list(self.stages)[: self.frozen_stages]:
            for p in stage.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if mode:
            for stage in list(self.stages)[: self.frozen_stages]:
                stage.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def build_backbone(
    name: str,
    norm: str = "frozen_bn",
    frozen_stages: int = 1,
    weights: Optional[str | Path] = None,
) -> Backbone:
    """Build backbone ``name``; with ``weights`` (a local state-dict file) initialise from it."""
    if name in RESNET_CHANNELS:
        net = getattr(resnet, name)(weights=None)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        stages = [nn.Sequential(stem, net.layer1), net.layer2, net.layer3, net.layer4]
        channels = RESNET_CHANNELS[name]
    elif name == "mobilenet_v2":
        feats = mobilenet_v2(weights=None).features
        bounds = (0,) + MOBILENET_V2_SPLITS
        stages = [feats[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        channels = MOBILENET_V2_CHANNELS
    else:
        raise SSPNetError(f"unknown backbone {name!r}")
    backbone = Backbone(name, stages, channels, frozen_stages, norm_eval=(norm == "frozen_bn"))
    if weights is not None:
        load_backbone_weights(backbone, weights)
    return backbone


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/format error means "not a weights file"
        raise SSPNetError(f"{path}: not a PyTorch weights file ({type(exc).__name__})") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise SSPNetError(f"{path}: not a state dict of tensors")
    return data


def load_backbone_weights(backbone: Backbone, path: str | Path) -> None:
    """Load ImageNet weights from a local file into ``backbone``, strictly.

    ResNet: a torchvision ``resnet*.pth`` state dict (its ``fc.*`` classifier is ignored).
    MobileNetV2: a ``mobilenet_v2().features`` state dict; the shipped file is checked against
    its sha256 so a corrupted copy is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise SSPNetError(f"backbone weights not found: {path}")
    known = next((k for k in KNOWN_WEIGHTS if k.file == path.name), None)
    if backbone.name == "mobilenet_v2" and known is not None:
        digest = sha256_of(path)
        if digest != known.sha256:
            raise SSPNetError(
                f"{path}: sha256 {digest[:12]}... does not match the known MobileNetV2 file "
                f"({known.sha256[:12]}...); the copy is corrupted or replaced"
            )
    state = _read_state_dict(path)
    if backbone.name == "mobilenet_v2":
        state = {k[len("features."):] if k.startswith("features.") else k: v for k, v in state.items()}
        target = nn.Sequential(*[m for stage in backbone.stages for m in stage])
    else:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        target = _resnet_view(backbone)
    missing, unexpected = _strict_load(target, state)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise SSPNetError(f"{path}: weights do not fit backbone {backbone.name}: {'; '.join(parts)} keys")
    backbone.init_source = f"{path.name} (sha256 {sha256_of(path)[:12]})"


def _strict_load(module: nn.Module, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        return missing, unexpected
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        return [f"{bad[0]} (shape {tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)})"], []
    module.load_state_dict(state, strict=True)
    return [], []


def _resnet_view(backbone: Backbone) -> nn.Module:
    """A module whose state-dict keys are torchvision ResNet's (``conv1.weight``, ``layer1.0...``)
    while sharing parameters with ``backbone``."""
    stem, layer1 = backbone.stages[0][0], backbone.stages[0][1]
    view = nn.Module()
    view.conv1, view.bn1 = stem[0], stem[1]
    view.layer1, view.layer2, view.layer3, view.layer4 = layer1, *backbone.stages[1:]
    return view
