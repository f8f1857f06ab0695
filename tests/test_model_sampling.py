"""The assigner's low-quality rule, Weighted Negative Sampling, and linear soft-NMS."""
import torch

from sspnet_cli.model.sampling import IGNORED, NEGATIVE, MaxIoUAssigner, sample, wns_logits
from sspnet_cli.model.soft_nms import soft_nms


def test_low_quality_match_needs_min_pos_iou():
    anchors = torch.tensor([[0.0, 0, 10, 10], [100, 100, 110, 110], [200, 200, 210, 210]])
    gt = torch.tensor([[0.0, 0, 10, 20], [100, 100, 103, 103]])  # best IoUs 0.5 and 0.09
    a = MaxIoUAssigner(0.7, 0.3, 0.3, low_quality=True)(gt, anchors)
    assert a.matched.tolist() == [0, NEGATIVE, NEGATIVE]  # the tiny GT gets no positive
    assert abs(float(a.max_iof[1]) - 1.0) < 1e-6  # the anchor covers all of the tiny GT
    b = MaxIoUAssigner(0.7, 0.3, 0.3, low_quality=False)(gt, anchors)
    assert b.matched.tolist() == [IGNORED, NEGATIVE, NEGATIVE]  # 0.5 lies between thresholds


def test_assigner_chunks_give_the_same_answer():
    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(500, 2, generator=g) * 100
    boxes = torch.cat([boxes, boxes + torch.rand(500, 2, generator=g) * 20 + 2], 1)
    gt = boxes[torch.randperm(500, generator=g)[:40]] + torch.randn(40, 4, generator=g)
    full = MaxIoUAssigner(0.7, 0.3, 0.3, True)(gt, boxes)
    chunked = MaxIoUAssigner(0.7, 0.3, 0.3, True, chunk_elems=1000)(gt, boxes)
    assert torch.equal(full.matched, chunked.matched)
    assert torch.allclose(full.max_iof, chunked.max_iof)


def test_images_without_gt_are_all_negative():
    a = MaxIoUAssigner(0.7, 0.3, 0.3, True)(torch.zeros((0, 4)), torch.rand(5, 4))
    assert a.matched.tolist() == [NEGATIVE] * 5 and float(a.max_iof.sum()) == 0
    pos, neg = sample(a.matched, 4, 0.5, wns_logits(torch.rand(5), a.max_iof, 0.6))
    assert len(pos) == 0 and len(neg) == 4


def test_wns_draw_frequencies_follow_the_weights():
    matched = torch.full((4,), NEGATIVE)
    conf = torch.tensor([0.0, 0.2, 0.9, 0.5])
    iof = torch.tensor([0.0, 1.0, 0.3, 0.0])
    logits = wns_logits(conf, iof, 0.6)
    expected = torch.softmax(logits, 0)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    draws = 20000
    for _ in range(draws):
        _, neg = sample(matched, 1, 0.0, logits, generator=g)
        counts[neg] += 1
    assert torch.allclose(counts / draws, expected, atol=0.012)
    # without replacement: a draw of k never repeats an index
    _, neg = sample(torch.full((50,), NEGATIVE), 30, 0.0, torch.rand(50), generator=g)
    assert len(set(neg.tolist())) == 30


def test_positive_fraction_caps_positives():
    matched = torch.tensor([0] * 10 + [NEGATIVE] * 10 + [IGNORED] * 5)
    pos, neg = sample(matched, 8, 0.25)
    assert len(pos) == 2 and len(neg) == 6 and all(matched[neg] == NEGATIVE)


def naive_soft_nms(boxes, scores, thr, min_score):
    """mmcv's linear soft-NMS, one box at a time."""
    from torchvision.ops import box_iou

    boxes, scores = boxes.clone(), scores.clone().double()
    idx = list(range(len(boxes)))
    alive = [i for i in idx if scores[i] >= min_score]
    out = []
    while alive:
        best = max(alive, key=lambda i: (scores[i].item(), -i))
        out.append((best, scores[best].item()))
        alive.remove(best)
        for i in list(alive):
            ov = box_iou(boxes[best : best + 1], boxes[i : i + 1]).item()
            if ov > thr:
                scores[i] *= 1 - ov
            if scores[i] < min_score:
                alive.remove(i)
    return out


def test_soft_nms_matches_one_box_at_a_time_and_caps():
    g = torch.Generator().manual_seed(1)
    batch_boxes, batch_scores = [], []
    for n in (60, 0, 25):
        xy = torch.rand(n, 2, generator=g) * 50
        batch_boxes.append(torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 20], 1))
        batch_scores.append(torch.rand(n, generator=g))
    result = soft_nms(batch_boxes, batch_scores, 0.3, 0.05, 500)
    for (idx, sc), b, s in zip(result, batch_boxes, batch_scores):
        ref = naive_soft_nms(b, s, 0.3, 0.05)
        assert idx.tolist() == [i for i, _ in ref]
        assert torch.allclose(sc, torch.tensor([v for _, v in ref], dtype=torch.float32), atol=1e-5)
        assert bool((sc >= 0.05).all())
    capped = soft_nms(batch_boxes[:1], batch_scores[:1], 0.3, 0.05, 7)
    assert capped[0][0].tolist() == result[0][0][:7].tolist()


def test_soft_nms_hand_computed():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.3])
    (idx, sc), = soft_nms([boxes], [scores], 0.3, 0.05, 500)
    # box 1 overlaps box 0 by IoU 0.5 -> 0.8 * (1 - 0.5) = 0.4; box 2 untouched
    assert idx.tolist() == [0, 1, 2]
    assert torch.allclose(sc, torch.tensor([0.9, 0.4, 0.3]))


def test_soft_nms_cpu_numpy_path_equals_the_batched_loop_exactly():
    from sspnet_cli.model.soft_nms import _soft_nms_batched

    g = torch.Generator().manual_seed(7)
    boxes, scores = [], []
    for n in (400, 0, 3, 250):  # dense clusters: many decays, ties after decay
        xy = torch.rand(n, 2, generator=g) * 60
        boxes.append(torch.cat([xy, xy + 3 + torch.rand(n, 2, generator=g) * 12], 1))
        scores.append(torch.rand(n, generator=g).round(decimals=2))  # repeated scores: tie-breaks matter
    for cap in (500, 40):
        fast = soft_nms(boxes, scores, 0.3, 0.05, cap)
        loop = _soft_nms_batched(boxes, scores, 0.3, 0.05, cap)
        for (i1, s1), (i2, s2) in zip(fast, loop):
            assert torch.equal(i1, i2) and torch.equal(s1, s2)
