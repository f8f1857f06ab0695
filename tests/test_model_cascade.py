"""Cascade R-CNN-SSPNet: stage settings, the cascade's plumbing on hand-made cases, training,
output caps, checkpoints and the CLI."""
import math

import pytest
import torch
from torchvision.ops import box_iou

from model_helpers import assert_checkpoint_kind_is_enforced, cli_train_detect_eval, train_steps
from sspnet_cli.config import CascadeConfig, ModelConfig, RoIConfig
from sspnet_cli.errors import SSPNetError
from sspnet_cli.model.build import build_from_config
from sspnet_cli.model.cascade import CascadeRoIHeads
from sspnet_cli.model.checkpoint import load_model, read_checkpoint, save_checkpoint
from test_model_detector import blob_scene

STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))


def cascade_config(**kw) -> ModelConfig:
    base = dict(
        detector="cascade_rcnn", backbone="resnet18", backbone_norm="bn", frozen_stages=0, neck_channels=32,
        roi=RoIConfig(fc_dim=128),
    )
    base.update(kw)
    return ModelConfig(**base)


def hand_set_heads(cfg: ModelConfig, shifts: list[float], cls_biases: list[tuple[float, float]], width: float) -> CascadeRoIHeads:
    """Stages whose outputs ignore the features: stage t moves every box right by ``shifts[t]``
    pixels (for boxes ``width`` wide, through its own stds) and scores it with logits
    ``cls_biases[t]``."""
    heads = CascadeRoIHeads(cfg)
    with torch.no_grad():
        for stage, shift, bias, stds in zip(heads.stages, shifts, cls_biases, cfg.cascade.stage_box_stds):
            stage.bbox_pred.weight.zero_()
            stage.bbox_pred.bias.copy_(torch.tensor([shift / width / stds[0], 0.0, 0.0, 0.0]))
            stage.cls_score.weight.zero_()
            stage.cls_score.bias.copy_(torch.tensor(bias))
    return heads


def random_levels(channels: int = 32, h: int = 96, w: int = 128) -> list[torch.Tensor]:
    return [torch.rand(1, channels, h // s, w // s) for s in (4, 8, 16, 32)]


def test_stage_settings_follow_the_config():
    heads = build_from_config(cascade_config()).roi_heads
    assert len(heads.stages) == 3 and heads.loss_weights == (1.0, 0.5, 0.25)
    for stage, iou, stds in zip(heads.stages, (0.5, 0.6, 0.7), STDS):
        a = stage.assigner
        assert (a.pos_iou, a.neg_iou, a.low_quality) == (iou, iou, False)
        assert stage.box_coder.weights == pytest.approx(tuple(1 / s for s in stds))
        assert stage.bbox_pred.out_features == 4  # class-agnostic
        assert (stage.cfg.batch_size_per_image, stage.cfg.positive_fraction) == (512, 0.25)
    two = CascadeConfig(stage_ious=(0.55, 0.65), stage_box_stds=STDS[:2], stage_loss_weights=(1.0, 0.3))
    heads = build_from_config(cascade_config(cascade=two)).roi_heads
    assert [s.assigner.pos_iou for s in heads.stages] == [0.55, 0.65] and heads.loss_weights == (1.0, 0.3)
    with pytest.raises(SSPNetError, match="every stage once"):
        cascade_config(cascade=CascadeConfig(stage_ious=(0.5, 0.6))).validate()


def test_test_cascade_refines_stage_by_stage_and_averages_the_stages_logits():
    cfg = cascade_config()
    gt = torch.tensor([[40.0, 30.0, 60.0, 70.0]])
    proposal = gt + torch.tensor([8.0, 0.0, 8.0, 0.0])  # same size, 8 px to the right
    shifts = [-4.0, -2.0, -1.0]  # each stage halves what is left
    biases = [(0.0, 2.0), (0.0, 0.0), (0.0, -1.0)]
    levels = random_levels()
    ious = []
    for k in (1, 2, 3):  # the cascade cut after k stages, same weights
        sub = cascade_config(cascade=CascadeConfig((0.5, 0.6, 0.7)[:k], STDS[:k], (1.0, 0.5, 0.25)[:k]))
        heads = hand_set_heads(sub, shifts[:k], biases[:k], width=20.0).eval()
        with torch.no_grad():
            probs, boxes = heads.scores_and_boxes(levels, [proposal], [(96, 128)])
        expected = proposal + torch.tensor([sum(shifts[:k]), 0.0, sum(shifts[:k]), 0.0])
        assert torch.allclose(boxes[:, 0], expected, atol=1e-3), (k, boxes)
        mean_logit = sum(b[1] - b[0] for b in biases[:k]) / k
        assert float(probs[0, 0]) == pytest.approx(1 / (1 + math.exp(-mean_logit)), abs=1e-5)
        ious.append(float(box_iou(boxes[:, 0], gt)[0, 0]))
    assert ious[0] < ious[1] < ious[2] < 1.0, ious
    full = hand_set_heads(cfg, shifts, biases, width=20.0).eval()
    with torch.no_grad():
        dets, _ = full(levels, [proposal], [torch.ones(1)], [(96, 128)])
    assert torch.allclose(dets[0]["boxes"], proposal + torch.tensor([-7.0, 0.0, -7.0, 0.0]), atol=1e-3)


def test_training_cascade_feeds_each_stage_the_previous_stages_boxes_without_gt(monkeypatch):
    torch.manual_seed(0)
    cfg = cascade_config()
    heads = hand_set_heads(cfg, [-3.0, -2.0, -1.0], [(0.0, math.log(3.0)), (0.0, 0.0), (0.0, 0.0)], width=10.0).train()
    gt = torch.tensor([[20.0, 20.0, 30.0, 40.0], [60.0, 50.0, 70.0, 70.0]])
    target = {"boxes": gt, "labels": torch.ones(2, dtype=torch.long)}
    proposals = torch.cat([gt + d for d in torch.tensor([[1.0, 0, 1, 0], [0, 2, 0, 2], [5, 5, 5, 5], [-2, 0, -2, 0]])])
    proposals = torch.cat([proposals, torch.tensor([[10.0, 0.0, 20.0, 20.0], [100.0, 60.0, 110.0, 80.0]])])
    seen = []
    for t, stage in enumerate(heads.stages):
        original = stage.select_training_samples

        def spy(props, conf, targets, original=original, t=t):
            seen.append((t, props[0].clone(), conf[0].clone()))
            return original(props, conf, targets)

        monkeypatch.setattr(stage, "select_training_samples", spy)
    _, losses = heads(random_levels(), [proposals], [torch.full((len(proposals),), 0.4)], [(96, 128)], [target])
    # every candidate (10 proposals + 2 GT) is sampled at each stage: the next stage's proposals are
    # exactly this stage's proposals, regressed (widths 10: stage t's shift), GT copies left out
    (_, p1, c1), (_, p2, c2), (_, p3, c3) = seen
    assert torch.equal(c1, torch.full((10,), 0.4))
    shift = lambda boxes, dx: boxes + torch.tensor([dx, 0.0, dx, 0.0])  # noqa: E731
    key = lambda b: sorted(map(tuple, b.round(decimals=3).tolist()))  # noqa: E731
    assert key(p2) == key(shift(p1, -3.0))
    assert key(p3) == key(shift(shift(p1, -3.0), -2.0))
    assert torch.allclose(c2, torch.full((10,), 0.75)) and torch.allclose(c3, torch.full((10,), 0.5))
    # stage losses carry the stage weights 1, 0.5, 0.25 (stages 2 and 3 score every RoI at p = 0.5)
    assert set(losses) == {f"loss_rcnn{t}_{k}" for t in (1, 2, 3) for k in ("cls", "box")}
    assert float(losses["loss_rcnn2_cls"]) == pytest.approx(0.5 * math.log(2), rel=1e-5)
    assert float(losses["loss_rcnn3_cls"]) == pytest.approx(0.25 * math.log(2), rel=1e-5)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = build_from_config(cascade_config(neck_channels=64, roi=RoIConfig(fc_dim=256))).train()
    scenes = [blob_scene(0), blob_scene(1)]
    images, targets = [s[0] for s in scenes], [s[1] for s in scenes]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    losses, totals = train_steps(model, images, targets, opt, 12)
    assert {"loss_rpn_cls", "loss_rcnn1_cls", "loss_rcnn3_box", "loss_att_dice"} <= set(losses)
    assert sum(totals[-3:]) / 3 < 0.7 * sum(totals[:3]) / 3, totals


def test_eval_output_caps_scores_and_boxes_inside_the_patch():
    torch.manual_seed(0)
    model = build_from_config(cascade_config()).eval()
    with torch.no_grad():  # an untrained head that scores almost everything above 0.05
        for stage in model.roi_heads.stages:
            stage.cls_score.bias.copy_(torch.tensor([-3.0, 3.0]))
        out = model([torch.rand(3, 200, 300), torch.rand(3, 120, 90)])
        ms, _ = model.predict((torch.rand(1, 3, 96, 128) * 255).to(torch.uint8), scales=(1.0, 2.0))
    for det, (h, w) in zip(out + ms, [(200, 300), (120, 90), (96, 128)]):
        assert 0 < len(det["boxes"]) <= 500
        assert bool((det["scores"] >= 0.05).all())
        b = det["boxes"]
        assert bool((b[:, :2] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all())
        assert det["labels"].unique().tolist() == [1]


def test_checkpoints_round_trip_and_refuse_another_kind(tmp_path):
    torch.manual_seed(0)
    model = build_from_config(cascade_config()).eval()
    path = tmp_path / "cascade.pt"
    save_checkpoint(path, model)
    loaded, _ = load_model(path)
    assert type(loaded) is type(model) and loaded.cfg == model.cfg
    x = [torch.rand(3, 96, 128)]
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a[0]["boxes"], b[0]["boxes"]) and torch.equal(a[0]["scores"], b[0]["scores"])
    assert_checkpoint_kind_is_enforced(path, "cascade_rcnn", "faster_rcnn", tmp_path)


def test_cli_train_detect_and_eval(tmp_path):
    run = cli_train_detect_eval(tmp_path, "cascade_rcnn")
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["config"]["detector"] == "cascade_rcnn" and ckpt["train_state"]["step"] == 2
