"""Attention targets equal the reference's level table and a naive paint-then-resize; the
loss pieces behave as the official code's."""
import math

import pytest
import torch
import torch.nn.functional as F

from sspnet_cli.config import AttentionConfig
from sspnet_cli.model.attention import attention_loss, attention_targets, dice_loss, level_values, ohem_weights

LEVEL_SIZES_640x512 = [(128, 160), (64, 80), (32, 40), (16, 20)]


def naive_targets(boxes_per_image, canvas, level_sizes):
    """The official algorithm, written plainly: paint each box (later over earlier) on a full
    canvas, then resize bilinearly (half-pixel centres) to each level."""
    H, W = canvas
    out = [[] for _ in level_sizes]
    for boxes in boxes_per_image:
        for lvl, (h, w) in enumerate(level_sizes):
            canvas_t = torch.zeros(H, W, dtype=torch.float64)
            for x1, y1, x2, y2 in boxes.tolist():
                side = math.sqrt(max(x2 - x1, 0) * max(y2 - y1, 0))
                v = float(level_values(torch.tensor([side]), lvl)[0])
                canvas_t[max(math.floor(y1), 0) : min(math.ceil(y2), H), max(math.floor(x1), 0) : min(math.ceil(x2), W)] = v
            out[lvl].append(F.interpolate(canvas_t[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0])
    return [torch.stack(o).float() for o in out]


def test_level_table_matches_reference_ranges():
    # positive ranges: P2 s<32, P3 8..64, P4 16..128, P5 s>32
    sides = torch.tensor([3.0, 6.0, 10.0, 20.0, 40.0, 100.0, 200.0])
    expected = {
        0: [1, 1, 1, 1, -1, -1, -1],
        1: [-1, -1, 1, 1, 1, -1, -1],
        2: [-1, -1, -1, 1, 1, 1, -1],
        3: [-1, -1, -1, -1, 1, 1, 1],
    }
    for lvl, exp in expected.items():
        assert level_values(sides, lvl).tolist() == exp


def test_targets_on_hand_made_boxes():
    # a 20 px box is positive on P2..P4 and wrong-scale on P5; a 100 px box the reverse on P2/P3
    boxes = [torch.tensor([[64.0, 64.0, 84.0, 84.0], [256.0, 256.0, 356.0, 356.0]])]
    t = attention_targets(boxes, (512, 640), LEVEL_SIZES_640x512)
    assert [tuple(x.shape) for x in t] == [(1, 128, 160), (1, 64, 80), (1, 32, 40), (1, 16, 20)]
    assert t[0][0, 18, 18] == 1 and t[1][0, 9, 9] == 1 and t[2][0, 4, 4] == 1  # inside the 20 px box
    assert t[0][0, 75, 75] == -1 and t[1][0, 37, 37] == -1  # 100 px box: wrong scale on P2, P3
    assert t[2][0, 18, 18] == 1 and t[3][0, 9, 9] == 1
    assert t[0][0, 0, 0] == 0  # background


def test_targets_equal_naive_paint_and_resize_with_overlaps_and_odd_sizes():
    g = torch.Generator().manual_seed(3)
    boxes = []
    for n in (25, 0, 7):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([300.0, 200.0])
        wh = torch.rand(n, 2, generator=g) ** 3 * 120 + 1
        boxes.append(torch.cat([xy, xy + wh], 1))
    canvas, levels = (224, 320), [(56, 80), (28, 40), (14, 20), (7, 10)]
    fast = attention_targets(boxes, canvas, levels)
    slow = naive_targets(boxes, canvas, levels)
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-6)
    # also a canvas that is not a multiple of the level size
    fast = attention_targets(boxes, (230, 317), [(58, 80)])
    slow = naive_targets(boxes, (230, 317), [(58, 80)])
    assert torch.allclose(fast[0], slow[0], atol=1e-6)


def test_dice_is_zero_without_positives_and_for_a_perfect_map():
    pred = torch.rand(2, 50)
    target = torch.zeros(2, 50)
    target[1, :5] = -1
    assert torch.allclose(dice_loss(pred, target), torch.zeros(2))
    target[0, 10:20] = 1
    perfect = torch.where(target > 0, 1.0, pred)
    assert abs(float(dice_loss(perfect, target)[0])) < 1e-6
    # 1 - 2(sum p + 1) / (sum p^2 + N + 2) with p = 0.5 on 10 positives: 1 - 12/14.5
    half = torch.where(target > 0, 0.5, pred)
    assert float(dice_loss(half, target)[0]) == pytest.approx(1 - 12 / 14.5, abs=1e-6)


def test_ohem_picks_three_background_pixels_per_positive_and_weights_wrong_scale():
    cfg = AttentionConfig()
    target = torch.zeros(1, 100)
    target[0, :4] = 0.7  # 4 positives (fractional targets count)
    target[0, 4:6] = -1  # 2 wrong-scale
    pred = torch.linspace(0.01, 0.99, 100)[None]
    w = ohem_weights(pred, target, cfg)
    bg_selected = (w[0, 6:] > 0).sum()
    assert bg_selected == 12  # 3 x 4 positives
    assert torch.equal(torch.nonzero(w[0, 6:] > 0).flatten() + 6, torch.arange(88, 100))  # the highest-scoring
    assert w[0, :4].tolist() == [1, 1, 1, 1] and w[0, 4:6].tolist() == [3, 3]
    # no positives: 5 % of the map
    w = ohem_weights(pred, torch.zeros(1, 100), cfg)
    assert (w > 0).sum() == 5


def test_attention_loss_values_and_bce_mode():
    torch.manual_seed(0)
    att = [torch.rand(2, 1, 8, 8, requires_grad=True)]
    tgt = [torch.zeros(2, 8, 8)]
    tgt[0][0, 2:4, 2:4] = 1
    losses = attention_loss(att, tgt, AttentionConfig())
    assert set(losses) == {"loss_att_bce", "loss_att_dice"}
    # dice is the batch mean: image 1 has no positives and contributes 0
    expected_dice = dice_loss(att[0].flatten(1), tgt[0].flatten(1)).mean()
    assert float(losses["loss_att_dice"].detach()) == pytest.approx(float(expected_dice.detach()), rel=1e-6)
    sum(losses.values()).backward()
    assert att[0].grad is not None
    plain = attention_loss(att, tgt, AttentionConfig(loss="bce"))
    assert set(plain) == {"loss_att_bce"}
    assert float(plain["loss_att_bce"].detach()) == pytest.approx(float(F.binary_cross_entropy(att[0].detach().flatten(1), tgt[0].flatten(1))), rel=1e-6)
