"""TinyPerson AP and log-average miss rate, computed as TinyBenchmark computes them.

Two reference codes are replicated, quirks included:

AP (TinyBenchmark's modified pycocotools ``COCOeval``, ``eval_standard='tiny'``, with
``ignore_uncertain`` and ``use_iod_for_ignore`` on, as ``evaluate_tiny.py`` runs it):
- the 200 highest-scoring detections of each image; IoU 0.25 / 0.5 / 0.75; 101 recall points;
- a ground truth is ignored if flagged ``ignore``, ``uncertain`` or ``iscrowd``, or if its area
  (the annotation's ``area`` field) is outside the range; crowd boxes are matched on IoD and
  stay available after a match, as in pycocotools;
- a detection matched to an ignored ground truth is ignored; an unmatched one is matched to an
  ignored ground truth whose IoD with it is >= the IoU threshold (and then ignored); a detection
  still unmatched whose area is outside the range is ignored.

MR (TinyBenchmark's modified CityPersons ``eval_MR_multisetup.py`` with ``filter_type='size'``):
- the 1000 highest-scoring detections of each image, then only those whose size lies in
  ``[low / 1.25, high * 1.25)``;
- a ground truth is ignored if flagged ``ignore`` or ``uncertain`` or if its size
  ``sqrt(area)`` is outside the range (``iscrowd`` plays no part); ignored ground truths are
  matched on IoD and never used up; an unmatched detection falls back to the ignored ground
  truth with the largest IoD if that is > 0.5;
- FPPI = false positives / number of ground-truth images (all of them); recall is read at 9
  FPPI points, log-spaced from 0.01 to 1, and MR = exp(mean(log(1 - recall))).

Quirks kept (see ``matching.py`` for the matching order and tie-breaks):
- The IoD of the fallbacks is computed from the overlap the code matched on, as
  ``o / (1 + o) * (1 + area_gt / area_det)`` with the annotation's ``area`` field. For AP that
  is the true IoD when ``area`` = w*h. MR has already replaced the IoU of ignored ground truths
  by their IoD (as AP does for crowd boxes), so the formula turns an IoD of 0.3 with a 100x
  larger ignore region into 23: MR's "> 0.5" test then passes for nearly any detection that
  touches an ignored box much larger than itself.
- Where even the first detection lies past an FPPI point, MR reads the final recall there
  (a -1 index; see ``_miss_rate``).
- A match is recorded as the ground truth's annotation id and an id of 0 reads as "unmatched",
  so a detection matched to an annotation with id 0 counts as a false positive (or is ignored
  if its own size is outside an AP range). Ids are rarely 0.
- Precision is tp / (tp + fp + eps), so with very few true positives a perfect AP comes out a
  hair under 100 (99.99999999999999).

Where the reference cannot run, this code decides: ``area``, ``iscrowd``, ``ignore`` and
``uncertain`` may be missing (w*h, false, false, false); an empty detection list gives AP 0 and
MR 100 (the reference's own no-detection path); a detection on an image the ground truth does
not list is an error (the reference asserts). Annotations sharing an id are evaluated as
separate annotations (the reference indexes them by id and would evaluate one of them twice and
lose the other) with a warning. MR's optional per-annotation ``size``/``height``/``vis`` fields
(absent from TinyPerson) are not read: size is always sqrt(area).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from sspnet_cli.evaluation.inputs import DetectionArrays, GroundTruthArrays, pack_detections, pack_ground_truth
from sspnet_cli.evaluation.matching import MatchSetup, greedy_match
from sspnet_cli.evaluation.overlaps import pairwise_overlaps
from sspnet_cli.evaluation.protocol import (
    AP_AREA_RANGES,
    AP_MAX_DETS,
    AP_RANGE_NAMES,
    FPPI_POINTS,
    IOU_THRESHOLDS,
    METRIC_KEYS,
    MR_DET_SIZE_SLACK,
    MR_IOD_FALLBACK,
    MR_RANGE_NAMES,
    MR_SIZE_RANGES,
    RECALL_THRESHOLDS,
    ap_key,
    mr_key,
)

# FPPI grid on which MissRateCurve samples the full curve for plotting.
_CURVE_FPPI = np.logspace(-3, 2, 251)


@dataclass(frozen=True)
class PrecisionRecallCurve:
    """Interpolated precision at the 101 recall points, as averaged into the AP."""

    iou: float
    range_name: str
    recall: np.ndarray  # (101,) the recall points 0, 0.01, ..., 1
    precision: np.ndarray  # (101,) 0 where the recall is never reached
    ap: float  # percent
    max_recall: float  # recall after the last detection, 0..1
    num_gt: int  # ground truths that count (not ignored)


@dataclass(frozen=True)
class MissRateCurve:
    """Miss rate against false positives per image.

    ``fppi``/``miss_rate`` sample the whole curve on a log grid (NaN left of the first
    detection); ``fppi_points``/``miss_rate_points`` are the 9 points averaged into the MR.
    """

    iou: float
    range_name: str
    fppi: np.ndarray
    miss_rate: np.ndarray
    fppi_points: np.ndarray  # (9,)
    miss_rate_points: np.ndarray  # (9,)
    mr: float  # percent
    num_gt: int


@dataclass(frozen=True)
class EvalResult:
    """Everything one evaluation produced.

    ``metrics`` maps every name of ``protocol.METRIC_KEYS`` (``"AP50_tiny"``, ``"MR25_all"``, ...)
    to a percentage, or to None where the range holds no ground truth that counts. Curves are
    keyed the same way and exist only for defined metrics.
    """

    metrics: dict[str, Optional[float]]
    pr_curves: dict[str, PrecisionRecallCurve] = field(default_factory=dict)
    mr_curves: dict[str, MissRateCurve] = field(default_factory=dict)
    num_images: int = 0
    num_gt: int = 0
    num_detections: int = 0
    warnings: tuple[str, ...] = ()


def evaluate_tinyperson(
    gt: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    *,
    category_id: int = 1,
) -> EvalResult:
    """Evaluate detections against TinyPerson-style ground truth, exactly as TinyBenchmark does.

    ``gt`` is a COCO dict (``images``; ``annotations`` with ``image_id``, ``bbox`` [x, y, w, h] and
    optional ``area``, ``ignore``, ``uncertain``, ``iscrowd``, ``id``). ``detections`` is a COCO
    results list of ``{"image_id", "bbox", "score"}`` (``category_id`` optional). Only
    ``category_id`` is evaluated. Raises :class:`~sspnet_cli.errors.SSPNetError` on a malformed
    record or a detection on an image the ground truth does not list.
    """
    gta, warnings = pack_ground_truth(gt, category_id)
    dta = pack_detections(detections, gta, category_id)
    return _evaluate_arrays(gta, dta, tuple(warnings))


def _evaluate_arrays(gt: GroundTruthArrays, dets: DetectionArrays, warnings: tuple[str, ...]) -> EvalResult:
    det_w, det_h = dets.boxes[:, 2], dets.boxes[:, 3]
    det_area = det_w * det_h
    det_size = np.sqrt(det_area)
    gt_size = np.sqrt(gt.area)
    n_ap, n_mr = len(AP_RANGE_NAMES), len(MR_RANGE_NAMES)

    # Groups 0..n_ap-1 are the AP ranges, then the MR ranges.
    ignored, use_iod, consumable, valid, det_outside = [], [], [], [], []
    ap_base = gt.ignore | gt.uncertain | gt.crowd
    for name in AP_RANGE_NAMES:
        lo, hi = AP_AREA_RANGES[name]
        ig = ap_base | (gt.area < lo) | (gt.area > hi)
        ignored.append(ig)
        use_iod.append(gt.crowd)
        consumable.append(~gt.crowd)
        valid.append(dets.rank < AP_MAX_DETS)
        det_outside.append((det_area < lo) | (det_area > hi))
    mr_base = gt.ignore | gt.uncertain
    for name in MR_RANGE_NAMES:
        lo, hi = MR_SIZE_RANGES[name]
        ig = mr_base | (gt_size < lo) | (gt_size > hi)
        ignored.append(ig)
        use_iod.append(ig)
        consumable.append(~ig)
        valid.append((det_size >= lo / MR_DET_SIZE_SLACK) & (det_size < hi * MR_DET_SIZE_SLACK))

    n_t = len(IOU_THRESHOLDS)
    groups = np.repeat(np.arange(n_ap + n_mr), n_t)
    thresholds = np.tile(np.minimum(np.array(IOU_THRESHOLDS), 1 - 1e-10), n_ap + n_mr)
    is_mr = groups >= n_ap
    setup = MatchSetup(
        det_valid=np.array(valid).reshape(n_ap + n_mr, len(dets)),
        gt_ignored=np.array(ignored).reshape(n_ap + n_mr, len(gt)),
        gt_use_iod=np.array(use_iod).reshape(n_ap + n_mr, len(gt)),
        gt_consumable=np.array(consumable).reshape(n_ap + n_mr, len(gt)),
        setting_group=groups,
        threshold=thresholds,
        fallback_threshold=np.where(is_mr, MR_IOD_FALLBACK, thresholds),
        fallback_inclusive=~is_mr,
    )
    pairs = pairwise_overlaps(gt, dets)
    seg_det, matched = greedy_match(pairs, dets.img, det_area, gt.area, setup)

    metrics: dict[str, Optional[float]] = dict.fromkeys(METRIC_KEYS)
    pr_curves: dict[str, PrecisionRecallCurve] = {}
    mr_curves: dict[str, MissRateCurve] = {}
    seg_of_det = np.full(len(dets), -1, np.int64)
    seg_of_det[seg_det] = np.arange(len(seg_det))
    for g in range(n_ap + n_mr):
        num_gt = int(np.count_nonzero(~setup.gt_ignored[g]))
        if num_gt == 0:
            continue  # the metric is undefined (None)
        order = dets.global_order[setup.det_valid[g][dets.global_order]]
        seg = seg_of_det[order]
        overlapping = np.flatnonzero(seg >= 0)  # positions in `order` of detections with pairs
        for t, iou in enumerate(IOU_THRESHOLDS):
            match = matched[g * n_t + t, seg[overlapping]]
            hit = match >= 0
            # the match as the reference records it: the annotation id, where 0 means none
            recorded = np.zeros(len(order), bool)
            recorded[overlapping[hit]] = ~gt.id_is_zero[match[hit]]
            det_ignored = np.zeros(len(order), bool)
            det_ignored[overlapping[hit]] = setup.gt_ignored[g][match[hit]]
            if g < n_ap:
                det_ignored |= ~recorded & det_outside[g][order]
                key = ap_key(iou, AP_RANGE_NAMES[g])
                curve = _precision_recall(recorded, det_ignored, num_gt, iou, AP_RANGE_NAMES[g])
                metrics[key], pr_curves[key] = curve.ap, curve
            else:
                key = mr_key(iou, MR_RANGE_NAMES[g - n_ap])
                mcurve = _miss_rate(recorded, det_ignored, num_gt, gt.num_images, iou, MR_RANGE_NAMES[g - n_ap])
                metrics[key], mr_curves[key] = mcurve.mr, mcurve

    return EvalResult(
        metrics=metrics,
        pr_curves=pr_curves,
        mr_curves=mr_curves,
        num_images=gt.num_images,
        num_gt=len(gt),
        num_detections=len(dets),
        warnings=warnings,
    )


def _cumulative(recorded: np.ndarray, ignored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tp = np.cumsum(recorded & ~ignored).astype(np.float64)
    fp = np.cumsum(~recorded & ~ignored).astype(np.float64)
    return tp, fp


def _precision_recall(
    recorded: np.ndarray, ignored: np.ndarray, num_gt: int, iou: float, name: str
) -> PrecisionRecallCurve:
    """COCO accumulation over detections in global score order (ignored ones included)."""
    tp, fp = _cumulative(recorded, ignored)
    recall = tp / num_gt
    precision = tp / (fp + tp + np.spacing(1))
    if len(precision):
        precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    reached = idx < len(precision)
    q = np.zeros(len(RECALL_THRESHOLDS))
    q[reached] = precision[idx[reached]]
    return PrecisionRecallCurve(
        iou=iou,
        range_name=name,
        recall=RECALL_THRESHOLDS.copy(),
        precision=q,
        ap=float(np.mean(q)) * 100,
        max_recall=float(recall[-1]) if len(recall) else 0.0,
        num_gt=num_gt,
    )


def _miss_rate(
    recorded: np.ndarray, ignored: np.ndarray, num_gt: int, num_images: int, iou: float, name: str
) -> MissRateCurve:
    """CityPersons accumulation: recall at the FPPI points, then the log-average miss rate."""
    tp, fp = _cumulative(recorded, ignored)
    fppi = fp / num_images
    recall = tp / num_gt
    if len(recall):
        # Index of the last detection with FPPI <= the point. Where even the first detection is
        # past the point the index is -1, and the reference reads recall[-1]: the *final*
        # recall. Replicated on purpose; it lowers the MR of detectors whose top detection is a
        # false positive on a small test set.
        idx = np.searchsorted(fppi, FPPI_POINTS, side="right") - 1
        at_points = recall[idx]
    else:
        at_points = np.zeros(len(FPPI_POINTS))  # no detection at all: recall 0, MR 100
    miss_points = 1 - at_points
    with np.errstate(divide="ignore"):
        mr = float(np.exp(np.mean(np.log(miss_points)))) * 100

    grid_idx = np.searchsorted(fppi, _CURVE_FPPI, side="right") - 1
    grid_miss = np.full(len(_CURVE_FPPI), np.nan)
    seen = grid_idx >= 0
    grid_miss[seen] = 1 - recall[grid_idx[seen]]
    return MissRateCurve(
        iou=iou,
        range_name=name,
        fppi=_CURVE_FPPI.copy(),
        miss_rate=grid_miss,
        fppi_points=FPPI_POINTS.copy(),
        miss_rate_points=miss_points,
        mr=mr,
        num_gt=num_gt,
    )
