"""A checkpoint's own test scales: recorded in its metadata, used by detect and eval unless
``--scales`` says otherwise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cli_helpers import run_cli, small_checkpoint
from fakes import RedBlobModel
from sspnet_cli.cli.options import parse_scales
from sspnet_cli.config import model_test_scales
from sspnet_cli.errors import SSPNetError
from sspnet_cli.inference.engine import Detector
from sspnet_cli.model.checkpoint import read_checkpoint


class ScaleRecorder(RedBlobModel):
    """Records the scales each predict call was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.scales_seen: list[tuple[float, ...]] = []

    def predict(self, batch, scales=(1.0,), with_attention=False):
        self.scales_seen.append(tuple(scales))
        return super().predict(batch, scales, with_attention)


def test_model_test_scales_reads_the_metadata_or_defaults_to_one():
    assert model_test_scales(None) == (1.0,)
    assert model_test_scales({}) == (1.0,)
    assert model_test_scales({"test_scales": [1, 1.5]}) == (1.0, 1.5)


def test_parse_scales_model_means_the_checkpoints_own():
    assert parse_scales("model") is None
    assert parse_scales("1,1.5") == (1.0, 1.5)
    with pytest.raises(SSPNetError):
        parse_scales("0")


def test_detector_runs_at_the_models_scales_unless_told_otherwise():
    frame = np.full((64, 80, 3), 120, np.uint8)
    frame[10:20, 10:20] = (255, 0, 0)
    model = ScaleRecorder()
    own = Detector.from_model(model, meta={"test_scales": [1, 1.5]})
    assert own.options.scales == (1.0, 1.5)
    own.detect(frame)
    assert model.scales_seen[-1] == (1.0, 1.5)
    fast = Detector.from_model(model, meta={"test_scales": [1, 1.5]}, scales=(1.0,))
    fast.detect(frame)
    assert model.scales_seen[-1] == (1.0,)
    plain = Detector.from_model(ScaleRecorder())  # no metadata: one scale, as before
    assert plain.options.scales == (1.0,)


def test_a_checkpoint_with_test_scales_detects_at_them(tmp_path):
    path = small_checkpoint(tmp_path)
    data = read_checkpoint(path)
    data["meta"]["test_scales"] = [1.0, 1.5]
    torch.save(data, path)
    det = Detector(path, device="cpu", backend="torch")
    assert det.options.scales == (1.0, 1.5)
    frame = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    both = det.detect(frame).detections
    one = det.with_options(scales=(1.0,)).detect(frame).detections
    assert len(both) > 0 and len(one) > 0
    assert not (len(both) == len(one) and torch.allclose(both.scores, one.scores))  # the 1.5x pass changed something
    assert run_cli("info", "--weights", path) == 0


def test_help_names_the_model_default():
    from typer.testing import CliRunner

    from sspnet_cli.cli.app import app

    for command in ("detect", "eval"):
        out = " ".join(CliRunner().invoke(app, [command, "--help"]).output.split())
        assert "'model'" in out and "[default: model]" in out
