"""Properties that must hold for any input (hypothesis)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sspnet_cli.evaluation.protocol import METRIC_KEYS
from sspnet_cli.evaluation.tinyperson import evaluate_tinyperson

coord = st.integers(0, 60).map(float)
side = st.integers(0, 40).map(float)
box = st.tuples(coord, coord, side, side).map(list)


@st.composite
def cases(draw):
    n_img = draw(st.integers(1, 4))
    anns = [
        {"id": i + 1, "image_id": draw(st.integers(1, n_img)), "bbox": b,
         "ignore": draw(st.booleans()), "iscrowd": int(draw(st.integers(0, 9)) == 0)}
        for i, b in enumerate(draw(st.lists(box, max_size=12)))
    ]
    n_det = draw(st.integers(0, 25))
    scores = draw(st.lists(st.floats(0, 1), min_size=n_det, max_size=n_det, unique=True))
    dets = [{"image_id": draw(st.integers(1, n_img)), "bbox": draw(box), "score": s} for s in scores]
    gt = {"images": [{"id": i} for i in range(1, n_img + 1)], "annotations": anns}
    return gt, dets


@settings(max_examples=60, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_metrics_are_percentages_and_ignore_input_order(case, rnd: random.Random):
    gt, dets = case
    result = evaluate_tinyperson(gt, dets)
    assert set(result.metrics) == set(METRIC_KEYS)
    for value in result.metrics.values():
        assert value is None or 0.0 <= value <= 100.0
    # scores are distinct, so the order detections and images are given in cannot matter
    shuffled_dets = list(dets)
    rnd.shuffle(shuffled_dets)
    shuffled_gt = {**gt, "images": list(reversed(gt["images"]))}
    assert evaluate_tinyperson(shuffled_gt, shuffled_dets).metrics == result.metrics


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(2, 30)), min_size=1, max_size=30, unique_by=lambda t: t[:2]))
def test_ground_truth_as_detections_is_perfect(cells):
    # People on a 40 px grid never overlap; each found exactly -> AP 100, MR 0 where defined.
    anns = [{"id": i + 1, "image_id": 1, "bbox": [40.0 * cx, 40.0 * cy, float(s), float(s)]}
            for i, (cx, cy, s) in enumerate(cells)]
    dets = [{"image_id": 1, "bbox": a["bbox"], "score": 0.5} for a in anns]
    result = evaluate_tinyperson({"images": [{"id": 1}], "annotations": anns}, dets)
    for key, value in result.metrics.items():
        if value is not None:
            # precision is tp / (tp + fp + eps), a hair under 1, as in the reference
            assert value == pytest.approx(100.0 if key.startswith("AP") else 0.0, abs=1e-9), key
    assert result.metrics["AP50_all"] == pytest.approx(100.0)
