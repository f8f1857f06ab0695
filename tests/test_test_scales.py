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


# -- the mirrored test (--flip) ---------------------------------------------------------------

def _mirrored(boxes: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def test_views_map_boxes_to_and_from_their_pixels():
    from sspnet_cli.model.views import View, views_for

    boxes = torch.tensor([[10.0, 5.0, 30.0, 25.0], [0.0, 0.0, 128.0, 96.0]])
    view = View(1.5, True)  # a 128 px wide input is 192 px wide in this view
    there = view.to_view(boxes, 192)
    assert torch.equal(there[0], torch.tensor([192 - 45.0, 7.5, 192 - 15.0, 37.5]))
    assert torch.allclose(view.to_input(there, 192), boxes)
    assert torch.equal(View().to_view(boxes, 128), boxes)
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert torch.equal(View(1.0, True).image(image), image.flip(-1))
    assert View(2.0, True).image(image).shape[-2:] == (8, 10)
    assert views_for((1, 1.5), flip=True) == [View(1.0), View(1.5), View(1.0, True), View(1.5, True)]
    assert views_for((1,)) == [View(1.0)]


@pytest.mark.parametrize("detector", ["faster_rcnn", "cascade_rcnn", "retinanet"])
def test_the_mirrored_test_sees_a_mirrored_frame_as_the_mirror_of_its_detections(detector):
    """With flip the views of a frame and of its mirror image are the same two views, so the
    detections of the mirror image are the mirror of the frame's: a wrong mapping anywhere
    (proposals, the R-CNN's RoIs, its regressed boxes, dense candidates) breaks the symmetry.
    The frame is 100 px wide: padded to 128, so padding is mirrored too (up-sampled views: the
    unit test above)."""
    from sspnet_cli.config import ModelConfig, RoIConfig
    from sspnet_cli.model.build import build_from_config

    cfg = ModelConfig(detector=detector, backbone="resnet18", backbone_norm="bn", frozen_stages=0, neck_channels=32, roi=RoIConfig(fc_dim=128))
    torch.manual_seed(0)
    model = build_from_config(cfg).eval()
    frame = (torch.rand(1, 3, 96, 100) * 255).to(torch.uint8)
    with torch.no_grad():
        if detector == "retinanet":
            model.head.classification_head.cls_logits.bias.fill_(-1.0)
        else:
            heads = model.roi_heads.stages if detector == "cascade_rcnn" else [model.roi_heads]
            for head in heads:
                head.cls_score.bias.copy_(torch.tensor([-2.0, 2.0]))
        (a,), _ = model.predict(frame, flip=True)
        (b,), _ = model.predict(frame.flip(-1), flip=True)
        (plain,), _ = model.predict(frame)
    assert len(a["boxes"]) > 10 and abs(len(a["boxes"]) - len(b["boxes"])) <= 2
    mirrored = _mirrored(b["boxes"], 100)
    dist = (a["boxes"][:, None, :] - mirrored[None, :, :]).abs().amax(-1) + (a["scores"][:, None] - b["scores"][None, :]).abs() * 1e3
    twin = dist.amin(1) < 1e-2
    # matched as sets: an untrained head gives many near-equal scores, whose order (which the
    # mirror image may change in the last bits) steers soft-NMS; a mapping error would leave
    # almost no box a twin
    assert bool(twin[:10].all()) and float(twin.float().mean()) >= 0.9, twin
    assert not (len(plain["scores"]) == len(a["scores"]) and torch.allclose(plain["scores"], a["scores"]))  # the mirror counted


def test_the_detector_runs_mirrored_when_the_checkpoint_or_the_option_says_so(tmp_path):
    path = small_checkpoint(tmp_path)
    data = read_checkpoint(path)
    data["meta"]["test_flip"] = True
    torch.save(data, path)
    det = Detector(path, device="cpu", backend="torch")
    assert det.options.flip is True and det.options.to_dict()["flip"] is True
    assert Detector(path, device="cpu", backend="torch", flip=False).options.flip is False
    frame = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    both = det.detect(frame).detections
    one = det.with_options(flip=False).detect(frame).detections
    assert len(both) > 0 and not (len(both) == len(one) and torch.allclose(both.scores, one.scores))
    out = tmp_path / "o.csv"
    assert run_cli("detect", tmp_path / "missing.jpg", "--weights", path, "--out", out, "--no-flip", "--device", "cpu") == 2  # the flag parses
    from typer.testing import CliRunner

    from sspnet_cli.cli.app import app

    for command in ("detect", "eval"):
        help_text = " ".join(CliRunner().invoke(app, [command, "--help"]).output.split())
        assert "--flip / --no-flip" in help_text and "the checkpoint's choice" in help_text
