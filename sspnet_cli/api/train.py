"""``train``: the SSPNet recipe on a TinyPerson / COCO / YOLO dataset, as ``sspnet train``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

from sspnet_cli.config import PRESET_BACKBONE_WEIGHTS, AttentionConfig, TrainConfig, WNSConfig, preset_config
from sspnet_cli.errors import SSPNetError
from sspnet_cli.training.loop import Callbacks, Trainer, TrainResult

PathLike = Union[str, Path]


def train(
    data: PathLike,
    out: PathLike,
    *,
    model: str = "paper",
    epochs: int = 12,
    lr_steps: Optional[Sequence[int]] = None,
    max_steps: Optional[int] = None,
    batch_size: int = 2,
    lr: Optional[float] = None,
    warmup_iters: int = 500,
    device: str = "auto",
    amp: bool = False,
    workers: int = 2,
    resume: Optional[PathLike] = None,
    init: Optional[PathLike] = None,
    exist_ok: bool = False,
    detector: str = "faster_rcnn",
    backbone: Optional[str] = None,
    backbone_weights: str = "default",
    neck: str = "sspnet",
    neck_channels: Optional[int] = None,
    fc_dim: Optional[int] = None,
    neck_norm: str = "bn",
    tile: tuple[int, int] = (640, 512),
    rotate_limit: float = 45.0,
    empty_patches: bool = False,
    ema: Optional[float] = None,
    frame_size: Optional[tuple[int, int]] = None,
    wns: bool = True,
    attention_loss: str = "dice+bce",
    anchors: str = "default",
    seed: int = 0,
    val_split: Optional[str] = "valid",
    deterministic: bool = False,
    callbacks: Optional[Callbacks] = None,
) -> TrainResult:
    """Train a detector into the run folder ``out`` (``last.pt``, ``best.pt``, ``metrics.jsonl``,
    ``config.json``): option for option what ``sspnet train`` does (its ``--help`` explains
    each). ``model`` is a preset (``paper`` or ``lite``); ``backbone``, ``neck_channels`` and
    ``fc_dim`` override it. ``ema`` keeps an average of the weights with that decay (e.g. 0.999),
    validated and kept in ``best.pt`` instead of the raw weights. ``lr_steps`` None follows ``epochs`` (8, 11 for 12 epochs; else 2/3
    and 11/12 of them). Progress reaches you through ``callbacks``; nothing is printed."""
    if backbone_weights == "default" and (backbone is None or backbone == "mobilenet_v2"):
        backbone_weights = PRESET_BACKBONE_WEIGHTS.get(model, "default")
    if ema is not None and not 0.0 < ema < 1.0:
        raise SSPNetError(f"--ema is a decay between 0 and 1 (e.g. 0.999), got {ema:g}")
    model_cfg = preset_config(model, detector=detector, backbone=backbone, neck=neck, neck_channels=neck_channels, neck_norm=neck_norm)
    if fc_dim is not None:
        model_cfg.roi.fc_dim = fc_dim
    model_cfg.wns = WNSConfig(enabled=wns)
    model_cfg.attention = AttentionConfig(loss=attention_loss)  # type: ignore[arg-type]
    model_cfg.validate()
    train_cfg = TrainConfig(
        epochs=epochs, lr_steps=tuple(lr_steps) if lr_steps else None, max_steps=max_steps, batch_size=batch_size,
        lr=lr, amp=amp, workers=workers, seed=seed, warmup_iters=warmup_iters, tile=tuple(tile),  # type: ignore[arg-type]
        val_split=val_split, rotate_limit=rotate_limit, skip_empty_patches=not empty_patches,
        frame_size=tuple(frame_size) if frame_size else None,  # type: ignore[arg-type]
        ema_decay=ema,
    )
    trainer = Trainer(
        data, out, train_cfg, model_cfg, device=device, backbone_weights=backbone_weights, anchors=anchors,
        resume=resume, init=init, exist_ok=exist_ok, deterministic=deterministic, callbacks=callbacks,
    )
    return trainer.run()
