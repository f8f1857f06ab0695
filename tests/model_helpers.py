"""Shared steps of the model tests: a few optimiser steps, and train -> detect -> eval from the CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest
import torch

from cli_helpers import run_cli
from sspnet_cli.data import write_synthetic_dataset


def train_steps(model: torch.nn.Module, images: Sequence[torch.Tensor], targets: Sequence[dict], opt: torch.optim.Optimizer,
                steps: int) -> tuple[dict[str, torch.Tensor], list[float]]:
    """``steps`` optimiser steps on one batch; the last step's losses and every step's total."""
    totals = []
    losses: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        losses = model(list(images), list(targets))
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(float(loss.detach()))
    return losses, totals


def cli_train_detect_eval(tmp_path: Path, detector: str) -> Path:
    """``sspnet train --detector DETECTOR --max-steps 2`` on a tiny synthetic dataset, then
    ``detect`` and ``eval`` with its ``last.pt`` (each must exit 0); returns the run folder."""
    data = write_synthetic_dataset(tmp_path / "ds", layout="tinyperson", splits={"train": 2, "valid": 1}, size=(256, 192), seed=0)
    run = tmp_path / "run"
    assert run_cli("train", data, "--out", run, "--detector", detector, "--backbone", "resnet18", "--neck-channels", "32",
                   "--tile", "192x160", "--max-steps", "2", "--device", "cpu", "--workers", "0", "--val-split", "none") == 0
    frame = next((Path(data) / "train").rglob("*.jpg"))
    assert run_cli("detect", frame, "--weights", run / "last.pt", "--out", tmp_path / "d.csv", "--device", "cpu") == 0
    assert run_cli("eval", "--data", data, "--split", "valid", "--weights", run / "last.pt", "--device", "cpu",
                   "--out", tmp_path / "m.json") == 0
    return run


def assert_checkpoint_kind_is_enforced(path: Path, kind: str, other: str, tmp_path: Path) -> None:
    """A ``kind`` checkpoint refuses to load as ``other``, and its weights under a Faster R-CNN
    configuration are refused as not matching the architecture."""
    from sspnet_cli.errors import SSPNetError
    from sspnet_cli.model.checkpoint import load_model, read_checkpoint

    assert load_model(path, expect_detector=kind)[0].cfg.detector == kind
    with pytest.raises(SSPNetError, match=f"a {kind} checkpoint, not {other}"):
        load_model(path, expect_detector=other)
    data = read_checkpoint(path)
    data["config"]["detector"] = "faster_rcnn"  # this kind's weights under a Faster R-CNN configuration
    torch.save(data, tmp_path / "relabelled.pt")
    with pytest.raises(SSPNetError, match="do not match the architecture"):
        load_model(tmp_path / "relabelled.pt")
