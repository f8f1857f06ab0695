"""RetinaNet-SSPNet: anchors, initial probability, assignment, the focal/L1 loss normalisation,
training, output caps, checkpoints, info and the CLI."""
import math

import pytest
import torch

from cli_helpers import run_cli
from model_helpers import assert_checkpoint_kind_is_enforced, cli_train_detect_eval, train_steps
from sspnet_cli.config import AnchorConfig, ModelConfig, RetinaNetConfig
from sspnet_cli.model.build import build_from_config
from sspnet_cli.model.checkpoint import load_model, read_checkpoint, save_checkpoint
from sspnet_cli.model.retinanet import RetinaNet, _groups
from sspnet_cli.model.summary import describe
from sspnet_cli.model.views import View
from test_model_detector import blob_scene


def retina_config(**kw) -> ModelConfig:
    base = dict(detector="retinanet", backbone="resnet18", backbone_norm="bn", frozen_stages=0, neck_channels=32)
    base.update(kw)
    return ModelConfig(**base)


def test_retinanet_gets_its_own_nine_anchors_unless_others_are_given():
    cfg = ModelConfig(detector="retinanet")
    assert cfg.anchors.scales == pytest.approx((2.0, 2.52, 3.175), abs=1e-3) and cfg.anchors.ratios == (0.5, 1.0, 2.0)
    assert ModelConfig.from_dict({"detector": "retinanet"}).anchors == cfg.anchors  # a hand-written config
    assert ModelConfig().anchors.scales == (1.5, 2.5, 3.7, 8.0)  # the R-CNNs keep the TinyPerson set
    model = build_from_config(retina_config())
    assert model.anchor_generator.num_anchors_per_location == 9
    assert model.head.classification_head.cls_logits.out_channels == 9 * 1
    sides = [math.sqrt(w * h) for w, h in model.anchor_generator.sizes()[0]]  # P2, stride 4
    assert sorted({round(s, 2) for s in sides}) == [8.0, 10.08, 12.7]
    asked = build_from_config(retina_config(anchors=AnchorConfig()))  # Faster R-CNN's set, explicitly
    assert asked.anchor_generator.num_anchors_per_location == 12
    desc = describe(model)
    p = desc["parameters"]
    assert desc["detector"] == "RetinaNet" and "rpn" not in p and "roi_head" not in p
    assert p["total"] == p["backbone"] + p["neck"] + p["head"]
    assert desc["anchors"]["per_location"] == 9 and {lv["used_by"] for lv in desc["pyramid_levels"]} == {"head"}


def test_initial_classification_probability_is_about_one_percent():
    torch.manual_seed(0)
    model = build_from_config(retina_config()).eval()
    with torch.no_grad():
        levels, _ = model.features(model.preprocess([torch.rand(3, 96, 128)])[0])
        logits, deltas, anchors, counts = model.head_outputs(levels)
    prob = torch.sigmoid(logits)
    assert logits.shape == (1, len(anchors), 1) and deltas.shape == (1, len(anchors), 4)
    assert counts == [24 * 32 * 9, 12 * 16 * 9, 6 * 8 * 9, 3 * 4 * 9, 2 * 2 * 9]
    assert float(prob.mean()) == pytest.approx(0.01, rel=0.1) and float(prob.max()) < 0.02
    # nothing reaches the 0.05 test threshold: an untrained RetinaNet reports no box
    assert len(model([torch.rand(3, 96, 128)])[0]["boxes"]) == 0


def test_assignment_and_loss_normalisation_over_the_batch():
    model = build_from_config(retina_config())
    anchors = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [4, 0, 14, 10], [50, 50, 60, 60], [0, 0, 4, 4]], dtype=torch.float32)
    # image 1: a GT on anchor 0; anchor 1 overlaps it at IoU 0.82 (positive), anchor 2 at 0.43
    # (ignored), anchors 3 and 4 are negatives. Image 2: a 3 x 2 person whose best anchor (4) has
    # IoU 6 / 16 = 0.375, under the negative threshold, yet the GT keeps it as a positive
    targets = [
        {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[0.0, 0.0, 3.0, 2.0]]), "labels": torch.tensor([1])},
    ]
    m1 = model.assigner(targets[0]["boxes"], anchors).matched.tolist()
    m2 = model.assigner(targets[1]["boxes"], anchors).matched.tolist()
    assert m1 == [0, 0, -2, -1, -1]
    assert m2 == [-1, -1, -1, -1, 0]
    logits = torch.zeros(2, 5, 1)  # p = 0.5 everywhere: each focal term is alpha_t * 0.25 * log 2
    deltas = torch.zeros(2, 5, 4)
    losses = model.head_losses(logits, deltas, anchors, targets)
    pos, neg = 2 + 1, 2 + 4
    unit = 0.25 * math.log(2)
    assert float(losses["loss_retina_cls"]) == pytest.approx((0.25 * pos + 0.75 * neg) * unit / pos, rel=1e-5)
    encoded = model.box_coder.encode_single(torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 3.0, 2.0]]), anchors[[1, 4]])
    assert float(losses["loss_retina_box"]) == pytest.approx(float(encoded.abs().sum()) / pos, rel=1e-5)
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.long)}
    losses = model.head_losses(logits[:1], deltas[:1], anchors, [empty])
    assert float(losses["loss_retina_cls"]) == pytest.approx(5 * 0.75 * unit, rel=1e-5)
    assert float(losses["loss_retina_box"]) == 0.0


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = build_from_config(retina_config(neck_channels=64)).train()
    scenes = [blob_scene(0), blob_scene(1)]
    images, targets = [s[0] for s in scenes], [s[1] for s in scenes]
    # Adam: the head's N(0, 0.01) convs make the first SGD steps tiny (the recipe's SGD needs
    # hundreds of steps to move the focal loss); Adam shows in a few steps that the gradients of
    # every loss point the right way
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    losses, totals = train_steps(model, images, targets, opt, 10)
    assert set(losses) == {"loss_retina_cls", "loss_retina_box", "loss_att_bce", "loss_att_dice"}
    assert sum(totals[-3:]) / 3 < 0.7 * sum(totals[:3]) / 3, totals


def test_eval_output_caps_scores_and_boxes_inside_the_patch():
    torch.manual_seed(0)
    model = build_from_config(retina_config()).eval()
    with torch.no_grad():  # every anchor scores ~0.5: the top-1000 per level and the 500 cap bite
        model.head.classification_head.cls_logits.bias.zero_()
        out = model([torch.rand(3, 200, 300), torch.rand(3, 120, 90)])
        ms, _ = model.predict((torch.rand(1, 3, 96, 128) * 255).to(torch.uint8), scales=(1.0, 2.0))
        levels, _ = model.features(model.preprocess([torch.rand(3, 200, 300)])[0])
        (boxes, scores, _), = model.candidates(levels, View(), 320)
    # padded to 224 x 320: P2..P4 hold more than 1000 anchors, P5 7 x 10 x 9, P6 4 x 5 x 9
    assert len(scores) == 3 * 1000 + 7 * 10 * 9 + 4 * 5 * 9
    for det, (h, w) in zip(out + ms, [(200, 300), (120, 90), (96, 128)]):
        assert len(det["boxes"]) == 500
        assert bool((det["scores"] >= 0.05).all())
        b = det["boxes"]
        assert bool((b[:, :2] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all())
        assert det["labels"].unique().tolist() == [1]
    small = RetinaNetConfig(detections_per_img=20, pre_nms_top_n=50)
    capped = build_from_config(retina_config(retinanet=small)).eval()
    capped.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert len(capped([torch.rand(3, 200, 300)])[0]["boxes"]) == 20


def test_soft_nms_groups_respect_the_memory_budget():
    assert _groups([5000, 5000, 5000], 1 << 26) == [[0, 1], [2]]
    assert _groups([100, 20000, 10], 1 << 26) == [[0], [1], [2]]
    assert _groups([], 10) == []


def test_checkpoints_round_trip_and_refuse_another_kind(tmp_path):
    torch.manual_seed(0)
    model = build_from_config(retina_config()).eval()
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias.fill_(-2.0)  # boxes to compare
    path = tmp_path / "retina.pt"
    save_checkpoint(path, model)
    loaded, _ = load_model(path, expect_detector="retinanet")
    assert isinstance(loaded, RetinaNet) and loaded.cfg == model.cfg
    x = [torch.rand(3, 96, 128)]
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert len(a[0]["boxes"]) > 0
    assert torch.equal(a[0]["boxes"], b[0]["boxes"]) and torch.equal(a[0]["scores"], b[0]["scores"])
    assert_checkpoint_kind_is_enforced(path, "retinanet", "cascade_rcnn", tmp_path)


def test_cli_train_detect_and_eval(tmp_path):
    run = cli_train_detect_eval(tmp_path, "retinanet")
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["config"]["detector"] == "retinanet" and len(ckpt["config"]["anchors"]["scales"]) == 3
    assert run_cli("info", "--weights", run / "last.pt", "--json") == 0
