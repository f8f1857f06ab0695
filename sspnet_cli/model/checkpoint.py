"""Checkpoints: the model configuration, the weights and training metadata in one file.

A checkpoint is a plain dict saved with ``torch.save``::

    {"format": "sspnet-checkpoint", "version": 1, "config": {...ModelConfig...},
     "state_dict": {...}, "meta": {...}, "train_state": {...} (optional)}

It is read with ``torch.load(weights_only=True)``, which unpickles tensors and plain containers
only, never arbitrary objects. ``load_model`` rebuilds the identical model from the file alone
and refuses a file of another kind or of another architecture with a one-line message.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from sspnet_cli.config import ModelConfig
from sspnet_cli.errors import SSPNetError
from sspnet_cli.atomic import atomic_write

FORMAT = "sspnet-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    meta: Optional[dict[str, Any]] = None,
    train_state: Optional[dict[str, Any]] = None,
    half: bool = False,
) -> None:
    """Write a checkpoint atomically (a temporary file in the same folder, then a rename).

    ``half`` stores floating-point weights as fp16 (they are restored to fp32 on load), halving
    the file for shipping.
    """
    cfg: ModelConfig = model.cfg  # type: ignore[assignment]
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.to_dict(),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    if train_state is not None:
        payload["train_state"] = train_state
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint file (weights only; nothing else is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise SSPNetError(f"weights not found: {path}")
    if os.path.getsize(path) == 0:
        raise SSPNetError(f"{path}: empty file, not a checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            reason = "it holds Python objects, which are never unpickled"
        elif zipfile.is_zipfile(path):
            reason = "a damaged PyTorch file"
        else:
            reason = "not a PyTorch file"
        raise SSPNetError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SSPNetError(f"{path}: not an sspnet checkpoint (a .pt of another kind)")
    if int(data.get("version", 0)) > VERSION:
        raise SSPNetError(f"{path}: checkpoint version {data.get('version')} is newer than this sspnet reads ({VERSION})")
    for key in ("config", "state_dict"):
        if not isinstance(data.get(key), dict):
            raise SSPNetError(f"{path}: checkpoint has no {key}")
    return data


def load_model(
    path: str | Path, device: str | torch.device = "cpu", expect_detector: Optional[str] = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights strictly.

    Returns the model (eval mode, on ``device``) and the checkpoint's metadata. A checkpoint whose
    weights do not fit its own configuration, or whose detector differs from ``expect_detector``,
    is refused with one line.
    """
    from sspnet_cli.model.build import build_from_config  # local: build imports every detector

    data = read_checkpoint(path)
    cfg = ModelConfig.from_dict(data["config"])
    if expect_detector is not None and cfg.detector != expect_detector:
        raise SSPNetError(f"{path}: a {cfg.detector} checkpoint, not {expect_detector}")
    model = build_from_config(cfg)
    load_state_strict(model, data["state_dict"], path)
    model.to(device).eval()
    return model, dict(data.get("meta") or {})


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``state`` into ``model``; any missing, unexpected or mis-shaped key is refused."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        example = (missing or unexpected or mismatched)[0]
        raise SSPNetError(
            f"{path}: weights do not match the architecture its configuration describes "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mis-shaped; e.g. {example})"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
