"""TinyPerson evaluation: AP and log-average miss rate exactly as TinyBenchmark computes them.

Typical use::

    from sspnet_cli.evaluation import evaluate_files, ap_table
    result = evaluate_files("tiny_set_test.json", "detections.json")
    result.metrics["AP50_tiny"], result.metrics["MR50_tiny"], result.warnings

Plots live in :mod:`sspnet_cli.evaluation.plots` (imports matplotlib when called).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Union

from sspnet_cli.evaluation.detections_io import LoadedDetections, load_detections, load_ground_truth
from sspnet_cli.evaluation.protocol import METRIC_KEYS
from sspnet_cli.evaluation.tables import Table, ap_table, format_value, mr_table
from sspnet_cli.evaluation.tinyperson import (
    EvalResult,
    MissRateCurve,
    PrecisionRecallCurve,
    evaluate_tinyperson,
)


def evaluate_files(
    gt_path: Union[str, Path], detections_path: Union[str, Path], *, category_id: int = 1
) -> EvalResult:
    """Load a ground-truth file and a detection file and evaluate them.

    Problems with individual records or unmatched images end up in ``result.warnings``;
    unusable files raise :class:`~sspnet_cli.errors.InputError`.
    """
    gt = load_ground_truth(gt_path, category_id)
    loaded = load_detections(detections_path, gt, category_id)
    result = evaluate_tinyperson(gt, loaded.detections, category_id=category_id)
    gt_warnings = tuple(f"{gt_path}: {w}" for w in result.warnings)
    return dataclasses.replace(result, warnings=gt_warnings + tuple(loaded.warnings))


__all__ = [
    "EvalResult",
    "LoadedDetections",
    "METRIC_KEYS",
    "MissRateCurve",
    "PrecisionRecallCurve",
    "Table",
    "ap_table",
    "evaluate_files",
    "evaluate_tinyperson",
    "format_value",
    "load_detections",
    "load_ground_truth",
    "mr_table",
]
