"""Greedy detection-to-ground-truth matching, for many settings at once.

Both TinyBenchmark evaluators match each image's detections in descending score order; a
detection takes, among the ground truths still available,

1. the best non-ignored one with overlap >= the threshold, else
2. the best ignored one with overlap >= the threshold, else
3. the ignored one with the largest IoD (first on ties) if that IoD passes the fallback test
   (AP: >= the threshold; MR: > 0.5), whether or not it is still available.

"Best" is the largest overlap; on ties the one listed last in the image's annotations wins
(the reference loop replaces its candidate on ``>=``). The IoD of step 3 is the reference's
``IOD_by_IOU``: ``o / (1 + o) * (1 + area_g / area_d)`` with ``o`` the overlap used for matching
and ``area_g`` the annotation's ``area`` field. It equals the true IoD when ``o`` is an IoU and
``area_g`` is w*h; where the reference feeds it something else (an overlap that is already an
IoD, or an ``area`` field that is not w*h) the same formula is used, so the numbers agree.

The settings differ in which ground truths are ignored, which overlap they match on, which
ground truths a match uses up and which detections take part; see ``MatchSetup``.

The only state is which ground truths are used up, and ground truths never span images, so the
k-th overlapping detection of every image can be processed together: one loop step per rank,
a few dozen numpy operations over the overlapping pairs of that rank in all images and all
settings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sspnet_cli.evaluation.overlaps import Overlaps


@dataclass(frozen=True)
class MatchSetup:
    """What the matcher needs to know, per group (a size range of AP or of MR) and per setting.

    A setting is a group plus an IoU threshold. Arrays indexed ``[group]`` are shared by the
    settings of that group.
    """

    det_valid: np.ndarray  # (R, D) bool: the detection takes part
    gt_ignored: np.ndarray  # (R, G) bool
    gt_use_iod: np.ndarray  # (R, G) bool: match on IoD instead of IoU for this ground truth
    gt_consumable: np.ndarray  # (R, G) bool: a match uses this ground truth up
    setting_group: np.ndarray  # (S,) int64
    threshold: np.ndarray  # (S,) float64: overlap needed to match (steps 1, 2)
    fallback_threshold: np.ndarray  # (S,) float64: IoD needed in step 3
    fallback_inclusive: np.ndarray  # (S,) bool: step 3 tests >= (True) or > (False)


def greedy_match(
    pairs: Overlaps,
    det_image: np.ndarray,
    det_area: np.ndarray,
    gt_area_field: np.ndarray,
    setup: MatchSetup,
) -> tuple[np.ndarray, np.ndarray]:
    """Match detections to ground truth in every setting.

    ``pairs`` must be sorted by detection, and detections by image and descending score (as
    :func:`pairwise_overlaps` and :func:`sort_detections` leave them).

    Returns ``(dets, matched)``: the detections that overlap some ground truth (``(N,)``) and, for
    each setting and each of them, the index of the ground truth it matched or -1 (``(S, N)``).
    Detections not in ``dets`` overlap nothing and so match nothing.
    """
    n_settings = len(setup.threshold)
    n_gt = setup.gt_ignored.shape[1]
    if len(pairs) == 0:
        return np.zeros(0, np.int64), np.full((n_settings, 0), -1, np.int64)

    # Detections that overlap nothing cannot change the state, so a step is "the k-th
    # overlapping detection of every image" rather than the k-th detection.
    first = np.ones(len(pairs), bool)
    first[1:] = pairs.det[1:] != pairs.det[:-1]
    owner_img = det_image[pairs.det[first]]
    ordinal = np.arange(len(owner_img)) - np.searchsorted(owner_img, owner_img, side="left")
    pair_step = ordinal[np.cumsum(first) - 1]

    order = np.argsort(pair_step, kind="stable")  # by step; then by detection, ground truth
    p_det, p_gt = pairs.det[order], pairs.gt[order]
    p_iou, p_iod = pairs.iou[order], pairs.iod[order]
    p_step = pair_step[order]
    # (1 + area_g / area_d) of the IoD fallback; area_d > 0 for every overlapping pair
    p_factor = 1 + gt_area_field[p_gt] / det_area[p_det]

    new_seg = np.ones(len(p_det), bool)
    new_seg[1:] = p_det[1:] != p_det[:-1]
    seg_index = np.cumsum(new_seg) - 1
    seg_det = p_det[new_seg]
    step_bounds = np.flatnonzero(np.diff(p_step)) + 1
    step_starts = np.concatenate([[0], step_bounds])
    step_ends = np.concatenate([step_bounds, [len(p_det)]])

    group = setup.setting_group
    thr = setup.threshold[:, None]
    fb_thr = setup.fallback_threshold[:, None]
    fb_incl = setup.fallback_inclusive[:, None]
    available = np.ones((n_settings, n_gt), bool)
    matched = np.full((n_settings, len(seg_det)), -1, np.int64)
    none_gt = np.int64(n_gt)

    for a, b in zip(step_starts, step_ends):
        gi, di = p_gt[a:b], p_det[a:b]
        starts = np.flatnonzero(new_seg[a:b])
        local_seg = seg_index[a:b] - seg_index[a]

        ignored = setup.gt_ignored[:, gi][group]
        valid = setup.det_valid[:, di][group]
        overlap = np.where(setup.gt_use_iod[:, gi][group], p_iod[a:b], p_iou[a:b])

        ok = available[:, gi] & valid & (overlap >= thr)
        ok_regular = ok & ~ignored
        has_regular = np.logical_or.reduceat(ok_regular, starts, axis=1)
        candidate = np.where(has_regular[:, local_seg], ok_regular, ok & ignored)
        value = np.where(candidate, overlap, -np.inf)
        best_value = np.maximum.reduceat(value, starts, axis=1)
        best = candidate & (value == best_value[:, local_seg])
        choice = np.maximum.reduceat(np.where(best, gi, -1), starts, axis=1)

        ign_valid = ignored & valid
        iod = np.where(ign_valid, overlap / (1 + overlap) * p_factor[a:b], -np.inf)
        best_iod = np.maximum.reduceat(iod, starts, axis=1)
        first = np.minimum.reduceat(np.where(ign_valid & (iod == best_iod[:, local_seg]), gi, none_gt), starts, axis=1)
        passes = np.where(fb_incl, best_iod >= fb_thr, best_iod > fb_thr)
        choice = np.where(choice >= 0, choice, np.where(passes, first, -1))

        seg_lo = seg_index[a]
        matched[:, seg_lo : seg_lo + len(starts)] = choice
        s_idx, j_idx = np.nonzero(choice >= 0)
        g_idx = choice[s_idx, j_idx]
        used = setup.gt_consumable[group[s_idx], g_idx]
        available[s_idx[used], g_idx[used]] = False

    return seg_det, matched
