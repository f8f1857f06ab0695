"""Backbones, necks, anchors and the RoI level mapper against the reference's numbers."""
import pytest
import torch

from sspnet_cli.model.anchors import AnchorGenerator, base_anchors, kmeans_anchors
from sspnet_cli.model.backbones import build_backbone
from sspnet_cli.model.necks import FPN, SSPNeck, scale_selection
from sspnet_cli.model.roi_heads import LevelRoIAlign


@pytest.mark.parametrize("hw", [(512, 640), (333, 517)])
@pytest.mark.parametrize("neck_cls", [SSPNeck, FPN])
def test_pyramid_shapes_and_attention_range(hw, neck_cls):
    torch.manual_seed(0)
    backbone = build_backbone("resnet18", norm="bn").eval()
    neck = neck_cls(backbone.out_channels, 64).eval()
    h, w = hw
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32  # the detector pads to a multiple of 32
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, ph, pw))
        pyramid, attentions = neck(feats)
    assert [tuple(f.shape[-2:]) for f in feats] == [(ph // s, pw // s) for s in (4, 8, 16, 32)]
    assert list(pyramid) == ["p2", "p3", "p4", "p5", "p6"]
    for (name, p), stride in zip(pyramid.items(), (4, 8, 16, 32, 64)):
        assert p.shape == (1, 64, -(-ph // stride), -(-pw // stride)), name
    if neck_cls is SSPNeck:
        assert len(attentions) == 4
        for a, p in zip(attentions, list(pyramid.values())[:4]):
            assert a.shape[1] == 1 and a.shape[-2:] == p.shape[-2:]
            assert float(a.min()) > 0 and float(a.max()) < 1
    else:
        assert attentions == []


def test_resnet50_c2_c5_channels_and_strides_on_640x512():
    backbone = build_backbone("resnet50").eval()
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 512, 640))
    assert [f.shape[1] for f in feats] == [256, 512, 1024, 2048]
    assert [tuple(f.shape[-2:]) for f in feats] == [(128, 160), (64, 80), (32, 40), (16, 20)]


def test_frozen_stages_and_norm_eval():
    backbone = build_backbone("resnet50", norm="frozen_bn", frozen_stages=1).train()
    first, later = backbone.stages[0], backbone.stages[1]
    assert not any(p.requires_grad for p in first.parameters())
    assert all(p.requires_grad for p in later.parameters())  # affine BN weights still train
    bns = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)  # running stats never update
    bn_mode = build_backbone("resnet18", norm="bn", frozen_stages=0).train()
    assert all(m.training for m in bn_mode.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_ssm_gate_blocks_gradient_where_lower_attention_is_zero():
    torch.manual_seed(0)
    lat = [torch.randn(1, 4, 8, 8, requires_grad=True), torch.randn(1, 4, 4, 4, requires_grad=True)]
    att = [torch.rand(1, 1, 8, 8), torch.rand(1, 1, 4, 4)]
    att[0][0, 0, 2, 3] = 0.0  # A_{k-1} zero at this location
    out = scale_selection(lat, att)
    out[0][0, :, 2, 3].sum().backward()
    assert lat[1].grad is not None and float(lat[1].grad.abs().sum()) == 0.0  # nothing from P_k
    assert float(lat[0].grad[0, :, 2, 3].abs().sum()) > 0  # the level's own lateral still learns
    # elsewhere the gate is open: the deeper level does receive gradient
    lat[1].grad = None
    out = scale_selection(lat, att)
    out[0][0, :, 4, 4].sum().backward()
    assert float(lat[1].grad.abs().sum()) > 0


def test_anchor_sizes_are_unrounded_and_centred_on_grid_points():
    base = base_anchors(4, (1.5, 2.5, 3.7, 8.0), (0.4, 0.8, 1.4))
    assert base.shape == (12, 4)
    sides = ((base[:, 2] - base[:, 0]) * (base[:, 3] - base[:, 1])).sqrt()
    assert torch.allclose(sides[:4], torch.tensor([6.0, 10.0, 14.8, 32.0]), atol=1e-4)  # not rounded
    ratios = (base[:, 3] - base[:, 1]) / (base[:, 2] - base[:, 0])
    assert torch.allclose(ratios[::4], torch.tensor([0.4, 0.8, 1.4]), atol=1e-5)
    gen = AnchorGenerator((1.5, 2.5, 3.7, 8.0), (0.4, 0.8, 1.4), (4, 8, 16, 32, 64))
    levels = gen.grid_anchors([(2, 3), (1, 2), (1, 1), (1, 1), (1, 1)], torch.device("cpu"))
    assert [len(a) for a in levels] == [2 * 3 * 12, 2 * 12, 12, 12, 12]
    centres = (levels[0][:, :2] + levels[0][:, 2:]) / 2
    # location (i=1, j=2) of P2 is the 6th location: centre (8, 4), no half-stride offset
    assert torch.allclose(centres[5 * 12], torch.tensor([8.0, 4.0]))


def test_kmeans_anchors_recover_known_sizes():
    import numpy as np

    rng = np.random.default_rng(0)
    sides = np.concatenate([rng.normal(s, 0.05 * s, 200) for s in (6.0, 12.0, 24.0, 48.0)])
    ratio = np.concatenate([rng.normal(r, 0.02, 200) for r in (0.5, 1.0, 2.0)] + [np.full(200, 1.0)])
    w, h = sides / np.sqrt(ratio), sides * np.sqrt(ratio)
    scales, ratios = kmeans_anchors(w, h, 4, 3)
    assert np.allclose(np.array(scales) * 4, [6, 12, 24, 48], rtol=0.08)
    assert np.allclose(ratios, [0.5, 1.0, 2.0], rtol=0.08)


def test_roi_level_mapper_uses_finest_scale_56():
    mapper = LevelRoIAlign((4, 8, 16, 32), 7, 0, 56.0)
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 111, 111], [0, 0, 112, 112], [0, 0, 224, 224], [0, 0, 900, 900]], dtype=torch.float)
    assert mapper.levels(boxes).tolist() == [0, 0, 1, 2, 3]


def test_the_cam_norm_is_batchnorm_or_groupnorm_and_checkpoints_keep_it(tmp_path):
    from sspnet_cli.config import ModelConfig
    from sspnet_cli.errors import SSPNetError
    from sspnet_cli.model.build import build_from_config
    from sspnet_cli.model.checkpoint import load_model, save_checkpoint

    def norms(model):
        return {type(m).__name__ for m in model.neck.cam.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm))}

    cfg = ModelConfig(backbone="resnet18", neck_channels=48, neck_norm="gn")
    model = build_from_config(cfg)
    assert norms(model) == {"GroupNorm"} and norms(build_from_config(ModelConfig(backbone="resnet18", neck_channels=48))) == {"BatchNorm2d"}
    gn = next(m for m in model.neck.cam.modules() if isinstance(m, torch.nn.GroupNorm))
    assert gn.num_groups == 16  # 48 channels: the largest of 32, 16, ... that divides them
    save_checkpoint(tmp_path / "gn.pt", model)
    loaded, _ = load_model(tmp_path / "gn.pt")
    assert loaded.cfg.neck_norm == "gn" and norms(loaded) == {"GroupNorm"}
    with pytest.raises(SSPNetError, match="unknown neck norm"):
        ModelConfig(neck_norm="ln").validate()


def test_folding_batchnorm_gives_the_same_detections():
    import copy

    from sspnet_cli.config import ModelConfig, RoIConfig
    from sspnet_cli.model.build import build_from_config
    from sspnet_cli.model.fold import fold_batchnorm

    torch.manual_seed(0)
    model = build_from_config(ModelConfig(backbone="mobilenet_v2", backbone_norm="bn", frozen_stages=0, neck_channels=32, roi=RoIConfig(fc_dim=64))).eval()
    with torch.no_grad():  # an untrained head that still reports boxes
        model.roi_heads.cls_score.bias.copy_(torch.tensor([-2.0, 2.0]))
    for m in model.modules():  # non-trivial statistics, or the fold is an identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) > 0
    assert not any(type(m) is torch.nn.BatchNorm2d for m in folded.modules())
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        (a,), _ = model.predict(x, scales=(1.0,), with_attention=False)
        (b,), _ = folded.predict(x, scales=(1.0,), with_attention=False)
    assert len(a["boxes"]) == len(b["boxes"]) > 0
    # The untrained head gives many equal scores, so rounding differences between CPU kernels
    # (AVX2 vs AVX512) may reorder ties: match every detection to one of the other set instead.
    box_gap = torch.cdist(a["boxes"], b["boxes"], p=float("inf"))
    score_gap = (a["scores"][:, None] - b["scores"][None, :]).abs()
    same = (box_gap < 0.05) & (score_gap < 1e-4)
    assert bool(same.any(1).all()) and bool(same.any(0).all())
    with pytest.raises(ValueError):
        fold_batchnorm(copy.deepcopy(model).train())


def test_box_voting_averages_the_overlapping_candidates_by_score():
    from sspnet_cli.model.roi_heads import vote_boxes

    boxes = torch.tensor([[10.0, 10, 20, 30], [12.0, 10, 22, 30], [40.0, 40, 50, 60], [10.0, 12, 20, 32]])
    scores = torch.tensor([0.9, 0.3, 0.8, 0.6])
    voted = vote_boxes(boxes[[0, 2]], boxes, boxes, scores, 0.5)
    # box 0 with its neighbours 1 (IoU 0.67) and 3 (IoU 0.82); box 2 alone
    expected0 = (0.9 * boxes[0] + 0.3 * boxes[1] + 0.6 * boxes[3]) / 1.8
    assert torch.allclose(voted[0], expected0) and torch.equal(voted[1], boxes[2])
    # a stricter threshold leaves box 1 out; another class (shifted far away) never votes
    assert torch.allclose(vote_boxes(boxes[[0]], boxes, boxes, scores, 0.75)[0], (0.9 * boxes[0] + 0.6 * boxes[3]) / 1.5)
    shifted = boxes.clone()
    shifted[3] += 1000
    assert torch.allclose(vote_boxes(shifted[[0]], shifted, boxes, scores, 0.5)[0], (0.9 * boxes[0] + 0.3 * boxes[1]) / 1.2)


def test_roi_select_votes_only_when_asked():
    from sspnet_cli.config import RoIConfig, WNSConfig
    from sspnet_cli.model.roi_heads import RoIHead

    boxes = torch.tensor([[[10.0, 10, 20, 30]], [[12.0, 10, 22, 30]], [[40.0, 40, 50, 60]]])
    probs = torch.tensor([[0.9], [0.3], [0.8]])
    picks = {}
    for iou in (0.0, 0.5):
        head = RoIHead(RoIConfig(fc_dim=16, box_voting_iou=iou), WNSConfig(), 8, 1, (4, 8, 16, 32))
        picks[iou] = head.select(probs, boxes, [3], [(100, 100)])[0]
    assert torch.equal(picks[0.0]["scores"], picks[0.5]["scores"])
    assert torch.equal(picks[0.0]["boxes"][0], boxes[0, 0])
    assert torch.allclose(picks[0.5]["boxes"][0], (0.9 * boxes[0, 0] + 0.3 * boxes[1, 0]) / 1.2)
    assert torch.equal(picks[0.5]["boxes"][1], boxes[2, 0])


def test_rpn_decodes_only_the_top_anchors_and_gives_torchvisions_proposals():
    """The RPN decodes each level's top-n anchors only; torchvision's way, decoding every anchor
    and then filtering, must give the very same proposals and scores."""
    from sspnet_cli.config import RPNConfig, WNSConfig
    from sspnet_cli.model.rpn import RPN

    torch.manual_seed(0)
    anchors = AnchorGenerator((1.5, 2.5, 3.7, 8.0), (0.4, 0.8, 1.4), (4, 8, 16, 32, 64))
    rpn = RPN(RPNConfig(pre_nms_top_n_test=300, post_nms_top_n_test=200), WNSConfig(), anchors, 16).eval()
    features = [torch.randn(2, 16, 128 // s, 160 // s) for s in (4, 8, 16, 32, 64)]
    sizes = [(128, 160), (128, 150)]
    boxes, scores, _ = rpn(features, sizes)

    objectness, deltas = rpn.head(features)
    per_level = anchors.grid_anchors([tuple(f.shape[-2:]) for f in features], features[0].device)
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    every = rpn.box_coder.decode(deltas, [torch.cat(per_level)] * 2).view(2, -1, 4)
    ref_boxes, ref_scores = rpn.filter_proposals(every, objectness, sizes, [len(a) for a in per_level])
    assert [len(b) for b in boxes] == [len(b) for b in ref_boxes] and len(boxes[0]) > 50
    for b, r, s, rs in zip(boxes, ref_boxes, scores, ref_scores):
        assert torch.equal(b, r) and torch.equal(s, rs)
