"""Recall by person size (what ``detect --coverage`` turns into a probability of detection)."""
from __future__ import annotations

import pytest

from sspnet_cli.evaluation.recall_by_size import SIZE_BINS, recall_by_size


def _gt(boxes, flags=None):
    flags = flags or [{} for _ in boxes]
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 512}],
        "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, **f} for i, (b, f) in enumerate(zip(boxes, flags))],
    }


def _det(box, score):
    return {"image_id": 1, "category_id": 1, "bbox": box, "score": score}


def test_bins_count_found_people_once_and_respect_score_iou_and_flags():
    boxes = [
        [10, 10, 3, 9],     # ~5.2 px: tiny1, found
        [50, 10, 3, 9],     # tiny1, only a low-scoring detection
        [100, 10, 9, 9],    # 9 px: tiny2, only a detection at IoU < 0.25
        [200, 10, 15, 15],  # 15 px: tiny3, found twice (counts once)
        [300, 10, 40, 40],  # 40 px: >= 32, found
        [400, 10, 5, 5],    # ignored: not counted
    ]
    gt = _gt(boxes, [{}, {}, {}, {}, {}, {"ignore": True}])
    dets = [
        _det([10, 10, 3, 9], 0.9),
        _det([50, 10, 3, 9], 0.2),
        _det([104, 10, 9, 9], 0.9),      # IoU 45/117 = 0.38 -> found at 0.25
        _det([107, 10, 9, 9], 0.9),      # the same person again, already found
        _det([200, 10, 15, 15], 0.8),
        _det([201, 10, 15, 15], 0.7),
        _det([300, 10, 40, 40], 0.5),
        _det([400, 10, 5, 5], 0.9),
    ]
    rows = recall_by_size(gt, dets)
    assert [(r["min_px"], r["max_px"]) for r in rows] == [tuple(map(float, b)) for b in SIZE_BINS]
    assert [(r["people"], r["found"]) for r in rows] == [(2, 1), (1, 1), (1, 1), (0, 0), (1, 1)]
    assert [r["recall"] for r in rows] == [0.5, 1.0, 1.0, 0.0, 1.0]
    strict = recall_by_size(gt, dets, iou=0.5)
    assert strict[1]["found"] == 0  # the shifted box is below IoU 0.5
    assert recall_by_size(gt, dets, score_thr=0.1)[0]["found"] == 2


def test_one_detection_finds_one_person_the_highest_score_first():
    gt = _gt([[10, 10, 10, 10], [12, 10, 10, 10]])
    # one box between two people finds only one of them
    assert recall_by_size(gt, [_det([11, 10, 10, 10], 0.9)])[1]["found"] == 1
    assert recall_by_size(gt, [_det([11, 10, 10, 10], 0.9), _det([12, 10, 10, 10], 0.8)])[1]["found"] == 2


def test_no_detections_gives_zero_recall():
    rows = recall_by_size(_gt([[10, 10, 3, 9]]), [])
    assert rows[0] == pytest.approx({"min_px": 2.0, "max_px": 8.0, "people": 1, "found": 0, "recall": 0.0})


def test_size_scale_bins_people_at_the_size_the_model_saw():
    gt = _gt([[10, 10, 3, 9]])  # 5.2 px stored: tiny1; twice that on a frame resized 2x: tiny2
    dets = [_det([10, 10, 3, 9], 0.9)]
    plain = recall_by_size(gt, dets)
    scaled = recall_by_size(gt, dets, size_scale={1: 2.0})
    assert [r["people"] for r in plain][:2] == [1, 0]
    assert [r["people"] for r in scaled][:2] == [0, 1] and scaled[1]["recall"] == 1.0
    assert recall_by_size(gt, dets, size_scale={7: 2.0}) == plain  # other images' factors do not apply
