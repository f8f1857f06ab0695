"""Hand-built cases whose AP and MR are worked out on paper.

Reminders for the arithmetic:
- AP = mean over the 101 recall points r = 0, 0.01, ..., 1 of the interpolated precision
  (the best precision at any recall >= r), 0 where r is never reached. Precision 1 up to a
  final recall of 0.5 gives 51 points of 1: AP = 51 / 101.
- MR = exp(mean(log(miss rate))) over the 9 FPPI points; any miss rate of 0 makes it 0.
- AP ranges are on area (tiny = area in [1, 400]); MR ranges on sqrt(area) (tiny = [2, 20]),
  and MR only looks at detections with size in [2 / 1.25, 20 * 1.25) = [1.6, 25) for tiny.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sspnet_cli.errors import SSPNetError
from sspnet_cli.evaluation.protocol import FPPI_POINTS, METRIC_KEYS
from sspnet_cli.evaluation.tinyperson import evaluate_tinyperson



def _gt(boxes, image_ids=None, images=(1,), **flags) -> dict:
    """Ground truth with one annotation per box; ``flags`` maps a flag name to the indices that
    have it set (e.g. ``ignore=[1]``)."""
    image_ids = image_ids or [images[0]] * len(boxes)
    anns = []
    for i, (box, im) in enumerate(zip(boxes, image_ids)):
        ann = {"id": i + 1, "image_id": im, "category_id": 1, "bbox": list(box)}
        for name, where in flags.items():
            ann[name] = i in where
        anns.append(ann)
    return {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in images], "annotations": anns}


def _det(box, score, image_id=1) -> dict:
    return {"image_id": image_id, "category_id": 1, "bbox": list(box), "score": score}


TINY = (10, 10, 10, 10)  # 10 px: AP tiny and tiny2 (area 100), MR tiny and tiny2 (size 10)
TINY_B = (100, 10, 10, 10)
SMALL = (50, 50, 25, 25)  # 25 px: AP small (area 625), MR small


def test_perfect_detections():
    # Each detection sits on its own GT (IoU 1), the other GT never overlaps it.
    # tiny: GT 10 px counts, GT 25 px is out of range (ignored); its detection matches that
    # ignored GT and is ignored -> TP only, precision 1 up to recall 1 -> AP 100.
    # MR tiny: the 25 px detection is filtered out (25 >= 25); recall 1 at FPPI 0 -> MR 0.
    result = evaluate_tinyperson(_gt([TINY, SMALL]), [_det(TINY, 0.9), _det(SMALL, 0.8)])
    m = result.metrics
    for iou in (25, 50, 75):
        for name in ("all", "tiny", "tiny2", "small"):
            assert m[f"AP{iou}_{name}"] == pytest.approx(100.0)
            assert m[f"MR{iou}_{name}"] == 0.0
        # no GT of that size: undefined, not 0
        for name in ("tiny1", "tiny3", "reasonable"):
            assert m[f"AP{iou}_{name}"] is None
        for name in ("tiny1", "tiny3"):
            assert m[f"MR{iou}_{name}"] is None
    assert set(m) == set(METRIC_KEYS)


def test_missed_tiny_gt():
    # Two tiny GTs, one found: precision 1 up to recall 0.5 -> AP = 51/101;
    # recall 0.5 at every FPPI point -> miss rate 0.5 everywhere -> MR 50.
    result = evaluate_tinyperson(_gt([TINY, TINY_B]), [_det(TINY, 0.9)])
    assert result.metrics["AP50_tiny"] == pytest.approx(100 * 51 / 101)
    assert result.metrics["MR50_tiny"] == pytest.approx(50.0)
    assert result.pr_curves["AP50_tiny"].max_recall == 0.5
    assert result.pr_curves["AP50_tiny"].num_gt == 2


# An ignore region 100x100 at (200, 200) and a 10 px detection (193, 220) that has 3 of its
# 10 columns inside it: intersection 30, IoD = 30/100 = 0.3, IoU = 30/10070 (about 0.003).
REGION = (200, 200, 100, 100)
HALF_IN = (193, 220, 10, 10)


def test_false_alarm_in_ignore_region_is_ignored_by_iod():
    # Order: the false alarm (0.9) then the true detection (0.8).
    gt = _gt([TINY, REGION], ignore=[1])
    result = evaluate_tinyperson(gt, [_det(HALF_IN, 0.9), _det(TINY, 0.8)])
    m = result.metrics
    # AP: IoU with the region 0.003 < every threshold, so the IoD rule decides:
    # IoD 0.3 >= 0.25 -> ignored -> only the TP remains -> AP25 = 100.
    # IoD 0.3 < 0.5 -> a false positive ranked first: tp [0, 1], fp [1, 1], precision
    # [0, 0.5] -> interpolated 0.5 at every recall point -> AP50 = AP75 = 50.
    assert m["AP25_tiny"] == pytest.approx(100.0)
    assert m["AP50_tiny"] == pytest.approx(50.0)
    assert m["AP75_tiny"] == pytest.approx(50.0)


def test_mr_iod_fallback_uses_the_benchmark_formula():
    # 100 images; in image 1 two tiny GTs (B never detected) and the ignore region. Two false
    # alarms each 30 % inside the region (0.9, 0.85), then a TP on A (0.8).
    # MR matches ignored GTs on IoD directly: 0.3 >= 0.25, so at IoU 0.25 both are ignored. At
    # 0.5 and 0.75 the fallback applies its IoU-to-IoD formula to that IoD:
    # o/(1+o)*(1+A_g/A_d) = 0.3/1.3*(1+10000/100) = 23.3 > 0.5 -> ignored as well.
    # Then only the TP counts: recall 0.5 at FPPI 0 -> miss 0.5 at all points -> MR 50.
    # (With a true-IoD test, 0.3 <= 0.5, they would be FPs: fppi [.01, .02, .02], recall
    # [0, 0, .5] -> miss 1 at the first two points -> MR = 0.5**(7/9) = 58.3.)
    half_in_2 = (193, 250, 10, 10)
    gt = _gt([TINY, TINY_B, REGION], image_ids=[1, 1, 1], images=tuple(range(1, 101)), ignore=[2])
    m = evaluate_tinyperson(gt, [_det(HALF_IN, 0.9), _det(half_in_2, 0.85), _det(TINY, 0.8)]).metrics
    for iou in (25, 50, 75):
        assert m[f"MR{iou}_tiny"] == pytest.approx(50.0)
    # AP for comparison: ignored at 0.25 (51 recall points at precision 1); at 0.5 two FPs come
    # before the TP: precision 1/3 up to recall 0.5.
    assert m["AP25_tiny"] == pytest.approx(100 * 51 / 101)
    assert m["AP50_tiny"] == pytest.approx(100 * 51 / 303)


def test_ap_uses_up_an_ignored_gt_once_matched():
    # An ignore-flagged 10 px box whose ``area`` field says 1, two detections exactly on it
    # (0.9, 0.85), then a TP on a regular GT (0.8).
    # Detection 1 matches the ignored GT (IoU 1) and uses it up. Detection 2 finds it taken and
    # falls back to the IoD formula with the area field: 1/(1+1)*(1+1/100) = 0.505.
    # IoU 0.5: 0.505 >= 0.5 -> ignored -> only the TP -> AP 100.
    # IoU 0.75: 0.505 < 0.75 -> FP before the TP -> precision 0.5 -> AP 50.
    # MR never uses up ignored GTs: detection 2 matches it again on IoD 1 -> MR 0.
    gt = _gt([TINY, TINY_B], ignore=[1])
    gt["annotations"][1]["area"] = 1.0
    m = evaluate_tinyperson(gt, [_det(TINY_B, 0.9), _det(TINY_B, 0.85), _det(TINY, 0.8)]).metrics
    assert m["AP50_tiny"] == pytest.approx(100.0)
    assert m["AP75_tiny"] == pytest.approx(50.0)
    assert m["MR75_tiny"] == 0.0


def test_out_of_range_detection_is_ignored():
    # A lone 30 px detection (area 900) scored above the true one.
    gt = _gt([TINY])
    dets = [_det((300, 300, 30, 30), 0.9), _det(TINY, 0.8)]
    m = evaluate_tinyperson(gt, dets).metrics
    # tiny: area 900 > 400 and unmatched -> ignored -> AP 100.
    assert m["AP50_tiny"] == pytest.approx(100.0)
    # all: area 900 is in range -> a false positive first -> AP 50 (as in the test above).
    assert m["AP50_all"] == pytest.approx(50.0)
    # MR tiny: size 30 >= 25 -> filtered before matching -> MR 0.
    assert m["MR50_tiny"] == 0.0


def test_fppi_negative_index_reads_the_last_recall():
    # One image, two tiny GTs; a false alarm (0.9) ranks above a TP (0.8); GT B is missed.
    # fppi = [1, 1], recall = [0, 0.5]. The first 8 FPPI points (< 1) lie before the first
    # detection: the index is -1 and the benchmark reads recall[-1] = 0.5 (the final recall),
    # not 0. The 9th point (1 + a few ulps) reads 0.5 too. Miss rate 0.5 everywhere -> MR 50.
    # Reading recall 0 there instead would give exp(log(0.5)/9) = 92.6.
    gt = _gt([TINY, TINY_B])
    dets = [_det((300, 300, 10, 10), 0.9), _det(TINY, 0.8)]
    result = evaluate_tinyperson(gt, dets)
    assert result.metrics["MR50_tiny"] == pytest.approx(50.0)
    np.testing.assert_allclose(result.mr_curves["MR50_tiny"].miss_rate_points, 0.5)
    # AP: tp [0, 1], fp [1, 1], recall [0, 0.5], precision [0, 0.5] -> 51 points of 0.5.
    assert result.metrics["AP50_tiny"] == pytest.approx(100 * 0.5 * 51 / 101)


def test_no_detections():
    # Every GT missed: precision 0 everywhere -> AP 0; recall 0 at all points -> MR 100.
    m = evaluate_tinyperson(_gt([TINY, SMALL]), []).metrics
    assert m["AP50_tiny"] == 0.0 and m["AP50_small"] == 0.0 and m["AP50_all"] == 0.0
    assert m["MR50_tiny"] == pytest.approx(100.0) and m["MR50_all"] == pytest.approx(100.0)
    assert m["AP50_tiny1"] is None


def test_all_ignored_images_give_undefined_metrics():
    # ignore, uncertain and crowd all make a GT not count in AP; with nothing to find every
    # metric is undefined, whatever the detections.
    gt = _gt([TINY, TINY_B, SMALL], ignore=[0], uncertain=[1], iscrowd=[2])
    gt["images"].append({"id": 2, "file_name": "2.jpg"})  # an image with no GT at all
    dets = [_det(TINY, 0.9), _det((5, 5, 8, 8), 0.5, image_id=2)]
    result = evaluate_tinyperson(gt, dets)
    assert all(result.metrics[k] is None for k in METRIC_KEYS if k.startswith("AP"))
    assert not result.pr_curves
    # MR does not look at iscrowd: the crowd box (25 px) is an ordinary small GT there, missed
    # by both detections (10 px: filtered, 8 px: filtered), so MR50_small = 100.
    assert result.metrics["MR50_small"] == pytest.approx(100.0)
    assert all(result.metrics[f"MR50_{r}"] is None for r in ("tiny", "tiny1", "tiny2", "tiny3"))


def test_crowd_gt_is_ignored_for_ap_but_counts_for_mr():
    # AP: the crowd GT is ignored -> nothing counts -> None. MR: crowd plays no part, the
    # detection finds it -> recall 1 -> MR 0.
    m = evaluate_tinyperson(_gt([TINY], iscrowd=[0]), [_det(TINY, 0.9)]).metrics
    assert m["AP50_tiny"] is None
    assert m["MR50_tiny"] == 0.0


def test_ap_keeps_200_detections_per_image_and_mr_1000():
    # 250 separate tiny people, each found exactly. AP sees the top 200 only: recall 0.8 at
    # precision 1 -> recall points 0..0.80 -> AP = 81/101. MR sees all 250 -> MR 0.
    boxes = [(20 * (i % 25), 20 * (i // 25), 10, 10) for i in range(250)]
    dets = [_det(b, 1.0 - i / 1000) for i, b in enumerate(boxes)]
    m = evaluate_tinyperson(_gt(boxes), dets).metrics
    assert m["AP50_tiny"] == pytest.approx(100 * 81 / 101)
    assert m["MR50_tiny"] == 0.0


def test_annotation_id_zero_counts_as_unmatched():
    # The benchmark records a match as the GT's id and reads 0 as "no match": a detection on
    # the GT with id 0 is a false positive (AP 0, MR 100) -- replicated on purpose.
    gt = _gt([TINY])
    gt["annotations"][0]["id"] = 0
    m = evaluate_tinyperson(gt, [_det(TINY, 0.9)]).metrics
    assert m["AP50_tiny"] == 0.0
    assert m["MR50_tiny"] == pytest.approx(100.0)


def test_area_field_decides_the_ap_range_and_sqrt_area_the_mr_range():
    # A 10x10 box annotated with area 500: AP treats it as small (500 in [400, 1024]), MR as
    # size sqrt(500) = 22.4, small as well; nothing is tiny. Detections are measured by their
    # box: the 10 px detection is outside MR small's [16, 40), so MR small misses the GT (100),
    # while MR all (no filter) finds it (0).
    gt = _gt([TINY])
    gt["annotations"][0]["area"] = 500.0
    m = evaluate_tinyperson(gt, [_det(TINY, 0.9)]).metrics
    assert m["AP50_small"] == pytest.approx(100.0) and m["AP50_tiny"] is None
    assert m["MR50_small"] == pytest.approx(100.0) and m["MR50_tiny"] is None
    assert m["MR50_all"] == 0.0


def test_equal_overlap_goes_to_the_later_annotation():
    # GTs A (0,0) and B (10,0), both 10 px. Detection 1 (0.9) at (5,0) overlaps each by 50 px:
    # IoU 50/150 = 1/3 with both. Detection 2 (0.8) is exactly A.
    # IoU 0.25: the tie goes to the GT listed last (B), so detection 2 still gets A: two TPs ->
    # AP 100. (Giving the tie to A would leave detection 2 unmatched: tp [1, 0], fp [0, 1] ->
    # AP 51/101.) IoU 0.5: detection 1 matches nothing -> FP first, then a TP; B is missed:
    # recall [0, 0.5], precision [0, 0.5] -> AP = 0.5 * 51/101.
    a, b = (0, 0, 10, 10), (10, 0, 10, 10)
    m = evaluate_tinyperson(_gt([a, b]), [_det((5, 0, 10, 10), 0.9), _det(a, 0.8)]).metrics
    assert m["AP25_tiny"] == pytest.approx(100.0)
    assert m["AP50_tiny"] == pytest.approx(100 * 0.5 * 51 / 101)


def test_regular_gt_is_preferred_to_an_ignored_one():
    # Two identical boxes, the one listed last uncertain (ignored). Regular GTs are tried first,
    # so detection 1 takes the regular one (TP) and detection 2 the ignored one (ignored):
    # AP 100, not 50.
    gt = _gt([TINY, TINY], uncertain=[1])
    m = evaluate_tinyperson(gt, [_det(TINY, 0.9), _det(TINY, 0.8)]).metrics
    assert m["AP50_tiny"] == pytest.approx(100.0)


def test_score_ties_keep_input_order_across_images():
    # Same score in two images: the sort is stable, so image 1 (lower id) comes first. An FP in
    # image 1 and a TP in image 2 with equal scores: tp [0, 1], fp [1, 1] -> AP 50. Swap the
    # images and the TP comes first: precision 1 at recall 1 -> AP 100.
    gt = _gt([TINY], image_ids=[2], images=(1, 2))
    fp_first = [_det(TINY, 0.5, image_id=2), _det(TINY, 0.5, image_id=1)]
    assert evaluate_tinyperson(gt, fp_first).metrics["AP50_tiny"] == pytest.approx(50.0)
    gt2 = _gt([TINY], image_ids=[1], images=(1, 2))
    assert evaluate_tinyperson(gt2, fp_first).metrics["AP50_tiny"] == pytest.approx(100.0)


def test_fppi_points_are_log_spaced_from_0_01_to_1():
    np.testing.assert_allclose(FPPI_POINTS, np.logspace(-2, 0, 9), rtol=1e-14)
    assert FPPI_POINTS[-1] > 1.0  # a few ulps above: FPPI exactly 1 is inside the last point


def test_mr_of_a_single_miss_rate_profile():
    # 100 images, 1 tiny GT in image 1, found by the 3rd-best detection after 2 false alarms
    # in other images: fppi = [0.01, 0.02, 0.02], recall = [0, 0, 1]. Points 0.01 and 0.0178
    # read index 0 and 0 -> recall 0 (miss 1); from 0.0316 on, recall 1 (miss 0) -> MR 0.
    # Now drop the GT's detection: recall stays 0 -> miss 1 at every point -> MR 100.
    images = tuple(range(1, 101))
    gt = _gt([TINY], image_ids=[1], images=images)
    fa = [_det((300, 300, 10, 10), 0.9, image_id=2), _det((300, 300, 10, 10), 0.8, image_id=3)]
    result = evaluate_tinyperson(gt, fa + [_det(TINY, 0.7)])
    np.testing.assert_array_equal(result.mr_curves["MR50_tiny"].miss_rate_points, [1, 1] + [0] * 7)
    assert result.metrics["MR50_tiny"] == 0.0
    assert evaluate_tinyperson(gt, fa).metrics["MR50_tiny"] == pytest.approx(100.0)


def test_fppi_at_exactly_a_point_counts():
    # 100 images, 2 tiny GTs in image 1: TP (0.9), FPs in images 2 and 3 (fppi 0.01, 0.02),
    # then the second TP (0.6): fppi [0, 0.01, 0.02, 0.02], recall [0.5, 0.5, 0.5, 1].
    # The first point (0.01 + a few ulps) includes fppi = 1/100 -> index 1 -> recall 0.5;
    # 0.0178 -> index 1 -> 0.5; 0.0316 and up -> index 3 -> recall 1 (miss 0) -> MR 0.
    # Without the second TP, recall is 0.5 at every point -> MR 50.
    images = tuple(range(1, 101))
    gt = _gt([TINY, TINY_B], image_ids=[1, 1], images=images)
    dets = [_det(TINY, 0.9), _det((300, 300, 10, 10), 0.8, 2), _det((300, 300, 10, 10), 0.7, 3)]
    assert evaluate_tinyperson(gt, dets).metrics["MR50_tiny"] == pytest.approx(50.0)
    result = evaluate_tinyperson(gt, dets + [_det(TINY_B, 0.6)])
    np.testing.assert_array_equal(result.mr_curves["MR50_tiny"].miss_rate_points, [0.5, 0.5] + [0] * 7)
    assert result.metrics["MR50_tiny"] == 0.0


def test_log_average_of_mixed_miss_rates():
    # 10 images, 4 tiny GTs in image 1; detections: TP, FP (fppi .1), TP, FP (.2), TP, then
    # 8 FPs (fppi up to 1.0), the 4th GT never found.
    # fppi after each: [0, .1, .1, .2, .2, .3, ..., 1.0]; recall [.25, .25, .5, .5, .75, .75...].
    # Points: 0.01, 0.0178, 0.0316, 0.0562 -> index 0 -> recall .25 (miss .75);
    # 0.1 (+ulps) -> last index with fppi <= 0.1 is 2 -> recall .5 (miss .5);
    # 0.178 -> index 2 -> .5; 0.316, 0.562, 1.0 -> recall .75 (miss .25).
    # MR = exp((4 log .75 + 2 log .5 + 3 log .25) / 9).
    images = tuple(range(1, 11))
    people = [(10 + 30 * i, 10, 10, 10) for i in range(4)]
    gt = _gt(people, image_ids=[1] * 4, images=images)
    far = (300, 300, 10, 10)
    dets = [_det(people[0], 0.99), _det(far, 0.98, 2), _det(people[1], 0.97), _det(far, 0.96, 3),
            _det(people[2], 0.95)] + [_det(far, 0.9 - 0.01 * k, 4 + k % 7) for k in range(8)]
    m = evaluate_tinyperson(gt, dets).metrics
    expected = math.exp((4 * math.log(0.75) + 2 * math.log(0.5) + 3 * math.log(0.25)) / 9) * 100
    assert m["MR50_tiny"] == pytest.approx(expected)


def test_rejects_bad_records():
    with pytest.raises(SSPNetError, match="detection #0: image_id 9"):
        evaluate_tinyperson(_gt([TINY]), [_det(TINY, 0.9, image_id=9)])
    with pytest.raises(SSPNetError, match="detection #1: 'score'"):
        evaluate_tinyperson(_gt([TINY]), [_det(TINY, 0.9), _det(TINY, float("nan"))])
    with pytest.raises(SSPNetError, match="'bbox' width and height"):
        evaluate_tinyperson(_gt([TINY]), [_det((0, 0, -1, 5), 0.9)])
    with pytest.raises(SSPNetError, match="ground-truth annotation #0"):
        evaluate_tinyperson(_gt([(1, 2, 3)]), [])
    with pytest.raises(SSPNetError, match="'images'"):
        evaluate_tinyperson({"annotations": []}, [])


def test_other_categories_and_stray_annotations_are_left_out_with_a_warning():
    gt = _gt([TINY, TINY_B])
    gt["annotations"][1]["category_id"] = 2
    gt["annotations"].append({"id": 9, "image_id": 77, "category_id": 1, "bbox": [0, 0, 5, 5]})
    dets = [_det(TINY, 0.9), {**_det(TINY_B, 0.95), "category_id": 2}]
    result = evaluate_tinyperson(gt, dets)
    assert result.metrics["AP50_tiny"] == pytest.approx(100.0)
    assert result.num_gt == 1 and result.num_detections == 1
    assert any("not listed in 'images'" in w for w in result.warnings)
    assert any("categories other than 1" in w for w in result.warnings)


def test_shared_annotation_ids_are_evaluated_separately_with_a_warning():
    gt = _gt([TINY, TINY_B])
    gt["annotations"][1]["id"] = 1
    result = evaluate_tinyperson(gt, [_det(TINY, 0.9), _det(TINY_B, 0.8)])
    assert result.metrics["AP50_tiny"] == pytest.approx(100.0)
    assert any("share an id" in w for w in result.warnings)
