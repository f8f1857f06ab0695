"""Model configuration: every setting of the detector, stored in checkpoints.

Defaults follow ``docs/model.md`` (the SSPNet paper and its official code); where the two
disagree the choice is written beside the field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Type, TypeVar, Union, get_args, get_origin, get_type_hints

from sspnet_cli.errors import SSPNetError

#: the review report lists detections scoring at least this, at most this many (``--report-thr``,
#: ``--report-max``); here, in a module the command line reads without importing the model
REPORT_THR = 0.3
REPORT_MAX = 2000

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2")
NECKS = ("sspnet", "fpn")
DETECTORS = ("faster_rcnn", "cascade_rcnn", "retinanet")


@dataclass
class AnchorConfig:
    """Anchors per pyramid level: ``scales`` x stride, aspect ratios h/w; unrounded, centred on
    (j*stride, i*stride). Defaults: the official k-means result on TinyPerson (12 per location)."""

    scales: tuple[float, ...] = (1.5, 2.5, 3.7, 8.0)
    ratios: tuple[float, ...] = (0.4, 0.8, 1.4)
    strides: tuple[int, ...] = (4, 8, 16, 32, 64)


def default_anchors(detector: str) -> AnchorConfig:
    """The reference's anchors for ``detector``: the TinyPerson k-means set (12 per location) for
    the two-stage detectors; for RetinaNet octave base scale 2 with 3 scales per octave
    (2, 2.52, 3.17 x stride) and ratios 0.5, 1, 2 (9 per location)."""
    if detector == "retinanet":
        return AnchorConfig(scales=tuple(2.0 * 2 ** (i / 3) for i in range(3)), ratios=(0.5, 1.0, 2.0))
    return AnchorConfig()


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
    # box voting after soft-NMS: each kept box becomes the score-weighted mean of the candidates
    # overlapping it by IoU >= this (0: off, the reference's soft-NMS alone). A tiny person's box
    # moves a pixel or two between proposals, which at IoU 0.5 decides a match (docs/model.md)
    box_voting_iou: float = 0.5


@dataclass
class CascadeConfig:
    """Cascade R-CNN's R-CNN stages (``detector="cascade_rcnn"``). Stage t is an R-CNN head with
    ``ModelConfig.roi``'s settings (RoIs per image, positive fraction, pooling, FC width, test
    thresholds) except its IoU threshold (positive = negative, no low-quality matches), its box
    coder stds and its loss weight; regression is class-agnostic."""

    stage_ious: tuple[float, ...] = (0.5, 0.6, 0.7)
    stage_box_stds: tuple[tuple[float, float, float, float], ...] = (
        (0.1, 0.1, 0.2, 0.2),
        (0.05, 0.05, 0.1, 0.1),
        (0.033, 0.033, 0.067, 0.067),
    )
    stage_loss_weights: tuple[float, ...] = (1.0, 0.5, 0.25)


@dataclass
class RetinaNetConfig:
    """The one-stage RetinaNet head (``detector="retinanet"``): torchvision's head of 4 stacked
    3x3 convs + ReLU per branch, shared over P2..P6. Its anchors are ``ModelConfig.anchors``."""

    pos_iou: float = 0.5
    neg_iou: float = 0.4
    # every GT keeps its best anchors as positives whatever their IoU (mmdetection's min_pos_iou=0)
    min_pos_iou: float = 0.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    prior_prob: float = 0.01  # classifier bias -log((1 - p) / p): initial probability p everywhere
    box_stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    pre_nms_top_n: int = 1000  # per level, at test
    score_thresh: float = 0.05
    soft_nms_iou: float = 0.3
    soft_nms_min_score: float = 0.05
    detections_per_img: int = 500


@dataclass
class WNSConfig:
    """Weighted Negative Sampling: negatives drawn without replacement with probability
    softmax(lam * confidence + (1 - lam) * IoF). The RPN sampler uses the anchors' current
    objectness as confidence (the paper's form; ``rpn_confidence=False`` gives the official
    code's IoF-only form); the R-CNN sampler uses the proposals' RPN objectness (in Cascade
    R-CNN's later stages: the previous stage's score). RetinaNet samples nothing: not used."""

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
    """The whole detector. ``sspnet info`` prints it; checkpoints carry it.

    ``anchors`` left out (None) means the detector's own default (:func:`default_anchors`), so
    a RetinaNet gets its 9 anchors and never Faster R-CNN's 12 unless they are given explicitly.
    ``rpn`` and ``wns`` serve the two-stage detectors, ``roi`` Faster R-CNN and every Cascade
    stage, ``cascade`` and ``retinanet`` only their detector.
    """

    detector: str = "faster_rcnn"
    backbone: str = "resnet50"
    # "frozen_bn": BN layers in eval mode (running stats never update), affine weights of the
    # non-frozen stages train: the official code's norm_eval=True. "bn": ordinary training BN
    # (for training a backbone from scratch, where ImageNet statistics do not exist).
    backbone_norm: Literal["frozen_bn", "bn"] = "frozen_bn"
    frozen_stages: int = 1  # stem + first stage (C2) do not train
    neck: str = "sspnet"
    neck_channels: int = 256
    # the SSPNet CAM's normalisation: "bn" (the official code) or "gn" (GroupNorm; see necks.py)
    neck_norm: Literal["bn", "gn"] = "bn"
    num_classes: int = 1  # foreground classes (person)
    # RGB on the 0-255 scale; images are fed to the model in [0, 1] and scaled internally
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisible: int = 32
    anchors: Optional[AnchorConfig] = None
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    retinanet: RetinaNetConfig = field(default_factory=RetinaNetConfig)
    wns: WNSConfig = field(default_factory=WNSConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def __post_init__(self) -> None:
        if self.anchors is None:
            self.anchors = default_anchors(self.detector)

    def validate(self) -> "ModelConfig":
        if self.detector not in DETECTORS:
            raise SSPNetError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        if self.backbone not in BACKBONES:
            raise SSPNetError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.neck not in NECKS:
            raise SSPNetError(f"unknown neck {self.neck!r}; choose one of {', '.join(NECKS)}")
        if self.backbone_norm not in ("frozen_bn", "bn"):
            raise SSPNetError(f"unknown backbone norm {self.backbone_norm!r}; choose frozen_bn or bn")
        if self.neck_norm not in ("bn", "gn"):
            raise SSPNetError(f"unknown neck norm {self.neck_norm!r}; choose bn or gn")
        if self.attention.loss not in ("dice+bce", "bce"):
            raise SSPNetError(f"unknown attention loss {self.attention.loss!r}; choose dice+bce or bce")
        if self.anchors is None:
            self.anchors = default_anchors(self.detector)
        if len(self.anchors.strides) != 5:
            raise SSPNetError("anchors.strides must give the five levels P2..P6")
        c = self.cascade
        if not (len(c.stage_ious) == len(c.stage_box_stds) == len(c.stage_loss_weights) >= 1):
            raise SSPNetError("cascade.stage_ious, stage_box_stds and stage_loss_weights must give every stage once")
        if any(len(stds) != 4 for stds in c.stage_box_stds):
            raise SSPNetError("cascade.stage_box_stds must give four stds per stage")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, "model").validate()


#: named model presets for ``sspnet train --model``: what each sets on top of ModelConfig's defaults
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # the paper's model: ResNet-50, 256-channel neck, two FC-1024 layers
    "paper": {},
    # SSPNet-Lite: every SSPNet part (CAM, SEM, SSM, attention loss, WNS, TinyPerson anchors) on a
    # MobileNetV2 backbone with a 64-channel neck and two FC-256 layers; widths chosen from speed
    # and short training runs on a 2-core CPU (docs/model.md, benchmarks/results/lite_*.json)
    "lite": {"backbone": "mobilenet_v2", "neck_channels": 64, "roi": {"fc_dim": 256}},
}


#: the backbone start each preset trains from by default (``--backbone-weights default``); a
#: short comparison picked the SSDLite person detector's MobileNetV2 for lite (weights/README.md)
PRESET_BACKBONE_WEIGHTS: dict[str, str] = {"paper": "default", "lite": "person"}


def preset_config(name: str, **overrides: Any) -> "ModelConfig":
    """The ModelConfig of preset ``name`` (see :data:`MODEL_PRESETS`), then ``overrides``
    (top-level fields; None values are ignored)."""
    if name not in MODEL_PRESETS:
        raise SSPNetError(f"unknown model preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}")
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MODEL_PRESETS[name].items()}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return ModelConfig.from_dict(data)


def describe_preset(name: str) -> str:
    """One line saying what preset ``name`` sets, for ``--help`` and ``info``."""
    cfg = preset_config(name)
    return (
        f"{name}: {cfg.backbone} backbone, {cfg.neck} neck at {cfg.neck_channels} channels, "
        f"R-CNN head FC-{cfg.roi.fc_dim} x2"
    )


def preset_of(cfg: "ModelConfig") -> Optional[str]:
    """The preset whose widths ``cfg`` has (backbone, neck channels, FC width), or None."""
    for name in MODEL_PRESETS:
        p = preset_config(name)
        if (p.backbone, p.neck_channels, p.roi.fc_dim) == (cfg.backbone, cfg.neck_channels, cfg.roi.fc_dim):
            return name
    return None


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
        hint = _strip_optional(hints[name])
        if value is None and hint is not hints[name]:
            kwargs[name] = None
        elif dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, f"{where}.{name}")
        elif get_origin(hint) is tuple and isinstance(value, (list, tuple)):
            kwargs[name] = _as_tuple(value)
        elif get_origin(hint) is Literal and value not in get_args(hint):
            raise SSPNetError(f"configuration {where}.{name} = {value!r} is not one of {get_args(hint)}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _strip_optional(hint: Any) -> Any:
    """``Optional[X]`` -> ``X``; any other hint unchanged."""
    args = get_args(hint)
    if get_origin(hint) is Union and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None))
    return hint


def _as_tuple(value: Any) -> Any:
    """Lists (as JSON stores tuples) back to tuples, nested ones included."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass
class TrainConfig:
    """The training recipe (docs/training.md). ``lr`` None means 0.002 x total batch / 2."""

    epochs: int = 12
    # epochs after which the lr drops x0.1; None follows ``epochs`` (see :meth:`resolved_lr_steps`:
    # the official 8, 11 for 12 epochs). The paper's 10 epochs with one step after 8 is
    # ``epochs=10, lr_steps=(8,)``
    lr_steps: Optional[tuple[int, ...]] = None
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
    # degrees of the shift-scale-rotate augmentation (the official 45); a rotated box becomes the
    # box around its rotated corners, which for people 3 px wide is far wider than the person
    rotate_limit: float = 45.0
    # resize every frame (train and validation) to (width, height) before patches are cut, e.g.
    # TinyPerson-RF's 640x640 frames back to their 16:9 shape at about the original scale
    frame_size: Optional[tuple[int, int]] = None
    val_split: Optional[str] = "valid"
    log_every: int = 10
    # keep an exponential moving average of the weights with this decay (training/ema.py):
    # validated, and kept in best.pt, instead of the raw weights; None: off
    ema_decay: Optional[float] = None

    def resolved_lr_steps(self) -> tuple[int, ...]:
        """``lr_steps``, or where None the rule that follows ``epochs``: the official config's
        8 and 11 for 12 epochs, else 2/3 and 11/12 of the epochs (rounded, at least 1)."""
        if self.lr_steps is not None:
            return tuple(self.lr_steps)
        if self.epochs == 12:
            return (8, 11)
        return tuple(sorted({max(1, round(self.epochs * 2 / 3)), max(1, round(self.epochs * 11 / 12))}))

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


def model_test_scales(meta: Optional[dict[str, Any]]) -> tuple[float, ...]:
    """The test scales a checkpoint recommends (its metadata's ``test_scales``, chosen on the
    validation split when the model was shipped), or ``(1.0,)`` where it records none."""
    scales = (meta or {}).get("test_scales")
    return tuple(float(s) for s in scales) if scales else (1.0,)


def model_test_flip(meta: Optional[dict[str, Any]]) -> bool:
    """Whether a checkpoint recommends the mirrored test (its metadata's ``test_flip``, chosen on
    the validation split when the model was shipped); False where it records nothing."""
    return bool((meta or {}).get("test_flip", False))


def training_frame_size(meta: Optional[dict[str, Any]]) -> Optional[tuple[int, int]]:
    """The ``--frame-size`` a checkpoint was trained with (from its metadata), or None."""
    size = ((meta or {}).get("train_config") or {}).get("frame_size")
    return (int(size[0]), int(size[1])) if size else None
