"""Model configuration: every setting of the detector, stored in checkpoints.

Defaults follow ``docs/model.md`` (the SSPNet paper and its official code); where the two
disagree the choice is written beside the field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Type, TypeVar, get_args, get_origin, get_type_hints

from sspnet_cli.errors import SSPNetError

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2")
NECKS = ("sspnet", "fpn")
DETECTORS = ("faster_rcnn",)


@dataclass
class AnchorConfig:
    """Anchors per pyramid level: ``scales`` x stride, aspect ratios h/w; unrounded, centred on
    (j*stride, i*stride). Defaults: the official k-means result on TinyPerson (12 per location)."""

    scales: tuple[float, ...] = (1.5, 2.5, 3.7, 8.0)
    ratios: tuple[float, ...] = (0.4, 0.8, 1.4)
    strides: tuple[int, ...] = (4, 8, 16, 32, 64)


@dataclass
class RPNConfig:
    pos_iou: float = 0.7
    neg_iou: float = 0.3
    # low-quality matches: a GT's best anchors become positive only if their IoU >= this
    min_pos_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    pre_nms_top_n_train: int = 2000  # per level
    pre_nms_top_n_test: int = 1000  # per level
    post_nms_top_n_train: int = 1000
    post_nms_top_n_test: int = 1000
    nms_iou: float = 0.7
    box_stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)


@dataclass
class RoIConfig:
    pos_iou: float = 0.5
    neg_iou: float = 0.5
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    box_stds: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
    # level = clamp(floor(log2(sqrt(w*h) / finest_scale + 1e-6)), 0, 3): tiny RoIs pool from P2
    finest_scale: float = 56.0
    pool_size: int = 7
    sampling_ratio: int = 0
    fc_dim: int = 1024
    score_thresh: float = 0.05
    soft_nms_iou: float = 0.3
    soft_nms_min_score: float = 0.05
    detections_per_img: int = 500


@dataclass
class WNSConfig:
    """Weighted Negative Sampling: negatives drawn without replacement with probability
    softmax(lam * confidence + (1 - lam) * IoF). The RPN sampler uses the anchors' current
    objectness as confidence (the paper's form; ``rpn_confidence=False`` gives the official
    code's IoF-only form); the R-CNN sampler uses the proposals' RPN objectness."""

    enabled: bool = True
    lam: float = 0.6
    rpn: bool = True
    rcnn: bool = True
    rpn_confidence: bool = True


@dataclass
class AttentionConfig:
    """Supervised attention loss on the SSPNet neck's scale-selection maps."""

    loss: Literal["dice+bce", "bce"] = "dice+bce"
    bce_weight: float = 0.01  # the official code puts the 0.01 on BCE
    dice_weight: float = 1.0
    ohem_ratio: int = 3  # background pixels per positive pixel
    wrong_scale_weight: float = 3.0
    empty_bg_fraction: float = 0.05  # background share kept when an image has no positives


@dataclass
class ModelConfig:
    """The whole detector. ``sspnet info`` prints it; checkpoints carry it."""

    detector: str = "faster_rcnn"
    backbone: str = "resnet50"
    # "frozen_bn": BN layers in eval mode (running stats never update), affine weights of the
    # non-frozen stages train: the official code's norm_eval=True. "bn": ordinary training BN
    # (for training a backbone from scratch, where ImageNet statistics do not exist).
    backbone_norm: Literal["frozen_bn", "bn"] = "frozen_bn"
    frozen_stages: int = 1  # stem + first stage (C2) do not train
    neck: str = "sspnet"
    neck_channels: int = 256
    num_classes: int = 1  # foreground classes (person)
    # RGB on the 0-255 scale; images are fed to the model in [0, 1] and scaled internally
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisible: int = 32
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    wns: WNSConfig = field(default_factory=WNSConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def validate(self) -> "ModelConfig":
        if self.detector not in DETECTORS:
            raise SSPNetError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        if self.backbone not in BACKBONES:
            raise SSPNetError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.neck not in NECKS:
            raise SSPNetError(f"unknown neck {self.neck!r}; choose one of {', '.join(NECKS)}")
        if self.backbone_norm not in ("frozen_bn", "bn"):
            raise SSPNetError(f"unknown backbone norm {self.backbone_norm!r}; choose frozen_bn or bn")
        if self.attention.loss not in ("dice+bce", "bce"):
            raise SSPNetError(f"unknown attention loss {self.attention.loss!r}; choose dice+bce or bce")
        if len(self.anchors.strides) != 5:
            raise SSPNetError("anchors.strides must give the five levels P2..P6")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, "model").validate()


T = TypeVar("T")


def _from_dict(cls: Type[T], data: Any, where: str) -> T:
    """Rebuild a (nested) config dataclass; missing keys keep their defaults, unknown keys are
    refused so that a checkpoint of another architecture never loads half-understood."""
    if not isinstance(data, dict):
        raise SSPNetError(f"configuration {where!r} is not a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise SSPNetError(f"configuration {where!r} has unknown fields: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, f"{where}.{name}")
        elif get_origin(hint) is tuple and isinstance(value, (list, tuple)):
            kwargs[name] = tuple(value)
        elif get_origin(hint) is Literal and value not in get_args(hint):
            raise SSPNetError(f"configuration {where}.{name} = {value!r} is not one of {get_args(hint)}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


@dataclass
class TrainConfig:
    """The training recipe (docs/training.md). ``lr`` None means 0.002 x total batch / 2."""

    epochs: int = 12
    # official config: 12 epochs, lr x0.1 after epochs 8 and 11 (the paper's 10 epochs with one
    # step after 8 is ``epochs=10, lr_steps=(8,)``)
    lr_steps: tuple[int, ...] = (8, 11)
    max_steps: Optional[int] = None
    batch_size: int = 2  # per process
    lr: Optional[float] = None
    base_lr_per_2: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    amp: bool = False
    workers: int = 2
    seed: int = 0
    tile: tuple[int, int] = (640, 512)
    overlap: int = 30
    skip_empty_patches: bool = True
    augment: bool = True
    val_split: Optional[str] = "valid"
    log_every: int = 10

    def total_lr(self, world_size: int = 1) -> float:
        """The learning rate, scaled linearly with the total batch when not given."""
        if self.lr is not None:
            return self.lr
        return self.base_lr_per_2 * self.batch_size * world_size / 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data, "train")
