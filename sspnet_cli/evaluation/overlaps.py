"""Detection/ground-truth pairs that overlap, with their IoU and IoD.

Only pairs with a positive intersection can ever match, so they are all the matcher needs; a
detection far from every ground truth box costs nothing beyond this pass.

The arithmetic follows pycocotools' ``bbIou`` operation by operation so that the values are
bit-identical to the reference (ties between equal overlaps decide matches):
``w = min(x1 + w1, x2 + w2) - max(x1, x2)``, a pair counts only if ``w > 0`` and ``h > 0``,
``IoU = i / (area_d + area_g - i)`` and ``IoD = i / area_d`` with ``area = w * h`` of the box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sspnet_cli.evaluation.inputs import DetectionArrays, GroundTruthArrays


@dataclass(frozen=True)
class Overlaps:
    """Overlapping pairs sorted by detection, then ground truth (both as global indices)."""

    det: np.ndarray  # (P,) int64
    gt: np.ndarray  # (P,) int64
    iou: np.ndarray  # (P,) float64 intersection over union
    iod: np.ndarray  # (P,) float64 intersection over the detection's area

    def __len__(self) -> int:
        return int(self.det.shape[0])


def pairwise_overlaps(gt: GroundTruthArrays, dets: DetectionArrays) -> Overlaps:
    """All overlapping (detection, ground truth) pairs within the same image."""
    n_img = gt.num_images
    g_start = np.searchsorted(gt.img, np.arange(n_img + 1), side="left")
    d_start = np.searchsorted(dets.img, np.arange(n_img + 1), side="left")
    d_area = dets.boxes[:, 2] * dets.boxes[:, 3]
    g_area = gt.boxes[:, 2] * gt.boxes[:, 3]
    d_x2 = dets.boxes[:, 0] + dets.boxes[:, 2]
    d_y2 = dets.boxes[:, 1] + dets.boxes[:, 3]
    g_x2 = gt.boxes[:, 0] + gt.boxes[:, 2]
    g_y2 = gt.boxes[:, 1] + gt.boxes[:, 3]

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    busy = np.flatnonzero((np.diff(g_start) > 0) & (np.diff(d_start) > 0))
    for k in busy:
        ds, de, gs, ge = d_start[k], d_start[k + 1], g_start[k], g_start[k + 1]
        w = np.minimum(d_x2[ds:de, None], g_x2[None, gs:ge]) - np.maximum(
            dets.boxes[ds:de, 0, None], gt.boxes[None, gs:ge, 0]
        )
        h = np.minimum(d_y2[ds:de, None], g_y2[None, gs:ge]) - np.maximum(
            dets.boxes[ds:de, 1, None], gt.boxes[None, gs:ge, 1]
        )
        di, gi = np.nonzero((w > 0) & (h > 0))
        if len(di):
            parts.append((di + ds, gi + gs, w[di, gi] * h[di, gi]))

    if parts:
        det = np.concatenate([p[0] for p in parts]).astype(np.int64)
        gti = np.concatenate([p[1] for p in parts]).astype(np.int64)
        inter = np.concatenate([p[2] for p in parts])
    else:
        det = np.zeros(0, np.int64)
        gti = np.zeros(0, np.int64)
        inter = np.zeros(0, np.float64)
    da = d_area[det]
    iou = inter / ((da + g_area[gti]) - inter)
    iod = inter / da
    return Overlaps(det=det, gt=gti, iou=iou, iod=iod)
