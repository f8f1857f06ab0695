"""Recall by person size: the share of people the model finds, bin by bin of their pixel size.

A field number, not a benchmark one: ``detect --coverage`` turns it into a probability of
detection per frame from the ground sample distance. A person counts as found when a detection
scoring at least ``score_thr`` (the threshold ``detect`` writes at) overlaps it with IoU >=
``iou`` (0.25 by default: a box on a person 3 px wide that is off by a pixel still points a
searcher at the right spot). Matching is greedy by descending score within each image, one
detection per person. People flagged ``ignore``, ``uncertain`` or ``iscrowd`` are left out.
Sizes are TinyPerson's: sqrt of the annotation's ``area`` (w*h where it has none), times the
image's ``size_scale`` when given: a model that detects on resized frames (``--frame-size``) sees
each person that many times larger, and the field figure is about the pixels the model sees.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from sspnet_cli.evaluation.inputs import pack_detections, pack_ground_truth
from sspnet_cli.evaluation.overlaps import pairwise_overlaps

#: pixel-size bins (low, high): TinyPerson's tiny1/tiny2/tiny3, small, then everything larger
SIZE_BINS: tuple[tuple[float, float], ...] = ((2.0, 8.0), (8.0, 12.0), (12.0, 20.0), (20.0, 32.0), (32.0, 1e9))


def recall_by_size(
    gt: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    *,
    score_thr: float = 0.3,
    iou: float = 0.25,
    bins: Sequence[tuple[float, float]] = SIZE_BINS,
    category_id: int = 1,
    size_scale: Optional[Mapping[Any, float]] = None,
) -> list[dict[str, float]]:
    """One row per size bin: ``min_px``, ``max_px``, ``people`` (counted ground truths),
    ``found`` and ``recall`` (``found / people``; 0 for an empty bin, whose row says so with
    ``people`` 0). ``gt`` and ``detections`` are the COCO forms :func:`evaluate_tinyperson` takes;
    ``size_scale`` maps image ids to the factor their people's sizes are binned at (default 1)."""
    gta, _ = pack_ground_truth(gt, category_id)
    kept = [d for d in detections if float(d.get("score", 0.0)) >= score_thr]
    dta = pack_detections(kept, gta, category_id)
    counted = ~(gta.ignore | gta.uncertain | gta.crowd)
    found = np.zeros(len(counted), dtype=bool)
    pairs = pairwise_overlaps(gta, dta)
    if len(pairs):
        good = (pairs.iou >= iou) & counted[pairs.gt]
        det, g, overlap = pairs.det[good], pairs.gt[good], pairs.iou[good]
        # detections by descending score (global order), each takes its best free person
        position = np.empty(len(dta.scores), dtype=np.int64)
        position[dta.global_order] = np.arange(len(dta.scores))
        order = np.lexsort((-overlap, position[det]))
        used = np.zeros(len(dta.scores), dtype=bool)
        for k in order:
            if not used[det[k]] and not found[g[k]]:
                used[det[k]] = True
                found[g[k]] = True
    size = np.sqrt(np.maximum(gta.area, 0.0))
    if size_scale:
        size = size * np.array([float(size_scale.get(gta.image_ids[i], 1.0)) for i in gta.img], dtype=np.float64)
    rows = []
    for low, high in bins:
        in_bin = counted & (size >= low) & (size < high)
        people = int(in_bin.sum())
        hits = int((found & in_bin).sum())
        rows.append({"min_px": float(low), "max_px": float(high), "people": people, "found": hits,
                     "recall": hits / people if people else 0.0})
    return rows
