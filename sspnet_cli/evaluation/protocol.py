"""The TinyPerson evaluation protocol: IoU thresholds, size ranges and limits.

Values are those of TinyBenchmark's evaluators (``evaluate_tiny.py`` runs its COCO-style AP
code with ``eval_standard='tiny'`` and its CityPersons-style MR code with size filtering).
The two codes measure size differently and are replicated as they are:

- AP ranges bound the box *area* (``w*h``, or the annotation's ``area`` field for ground
  truth), inclusive at both ends, and start at 1 px (area 1).
- MR ranges bound the *size* ``sqrt(area)``, inclusive at both ends, and start at 2 px.
"""
from __future__ import annotations

import numpy as np

IOU_THRESHOLDS: tuple[float, ...] = (0.25, 0.5, 0.75)

# name -> (low, high) bounds on area in px^2, inclusive. "reasonable" is everything >= 32 px.
AP_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (1.0**2, 1e5**2),
    "tiny": (1.0**2, 20.0**2),
    "tiny1": (1.0**2, 8.0**2),
    "tiny2": (8.0**2, 12.0**2),
    "tiny3": (12.0**2, 20.0**2),
    "small": (20.0**2, 32.0**2),
    "reasonable": (32.0**2, 1e5**2),
}

# name -> (low, high) bounds on size sqrt(area) in px, inclusive.
MR_SIZE_RANGES: dict[str, tuple[float, float]] = {
    "tiny1": (2.0, 8.0),
    "tiny2": (8.0, 12.0),
    "tiny3": (12.0, 20.0),
    "tiny": (2.0, 20.0),
    "small": (20.0, 32.0),
    "all": (-1.0, 1e5**2),
}

AP_MAX_DETS = 200
MR_MAX_DETS = 1000
# MR keeps only detections whose size lies in [low / 1.25, high * 1.25) before matching.
MR_DET_SIZE_SLACK = 1.25
# An unmatched detection is matched to an ignored GT when its IoD with it is > 0.5 (MR code).
MR_IOD_FALLBACK = 0.5

RECALL_THRESHOLDS: np.ndarray = np.linspace(0.0, 1.0, 101)

# The 9 FPPI points, log-spaced from 0.01 to 1. These are the exact floats the benchmark's
# arange-over-logs construction yields, each a few ulps above the nominal 10**(k/4 - 2).
# FPPI values are fp / n_images and can land exactly on a nominal point (e.g. 10 / 1000), so
# the last bits decide whether that detection counts; hence the literal values.
FPPI_POINTS: np.ndarray = np.array(
    [
        float.fromhex(h)
        for h in (
            "0x1.47ae147ae147dp-7",
            "0x1.235a71c5ee5cfp-6",
            "0x1.030dc4ea03a77p-5",
            "0x1.ccab8602d26a1p-5",
            "0x1.99999999999a5p-4",
            "0x1.6c310e3769f4ap-3",
            "0x1.43d136248491bp-2",
            "0x1.1feb33c1c382ap-1",
            "0x1.000000000000cp+0",
        )
    ]
)

AP_RANGE_NAMES: tuple[str, ...] = tuple(AP_AREA_RANGES)
MR_RANGE_NAMES: tuple[str, ...] = ("all", "tiny", "tiny1", "tiny2", "tiny3", "small")


def iou_label(iou: float) -> str:
    """``0.5`` -> ``"50"``, the IoU as it appears in metric names."""
    return f"{round(iou * 100):d}"


def ap_key(iou: float, range_name: str) -> str:
    """Metric name of an AP, e.g. ``ap_key(0.5, "tiny") == "AP50_tiny"``."""
    return f"AP{iou_label(iou)}_{range_name}"


def mr_key(iou: float, range_name: str) -> str:
    """Metric name of a log-average miss rate, e.g. ``"MR50_tiny"``."""
    return f"MR{iou_label(iou)}_{range_name}"


METRIC_KEYS: tuple[str, ...] = tuple(
    [ap_key(t, r) for t in IOU_THRESHOLDS for r in AP_RANGE_NAMES]
    + [mr_key(t, r) for t in IOU_THRESHOLDS for r in MR_RANGE_NAMES]
)
