"""Running a detector over a dataset split and scoring it with the TinyPerson metrics.

Above the metrics (this package's other modules never run a model) and the detection engine:
``sspnet eval``, the API's :func:`sspnet_cli.api.evaluate` and the validation of ``sspnet train``
all go through :func:`evaluate_detector`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from sspnet_cli.data import Dataset
from sspnet_cli.evaluation.detections_io import load_ground_truth
from sspnet_cli.evaluation.recall_by_size import recall_by_size
from sspnet_cli.evaluation.tinyperson import EvalResult, evaluate_tinyperson
from sspnet_cli.inference.engine import Detector, Failure, RunStats
from sspnet_cli.types import ImageResult

#: evaluation keeps every detection down to the model's own 0.05 floor (the benchmark's setting)
EVAL_SCORE_FLOOR = 0.05


@dataclass
class EvalReport:
    """An evaluation of a detector on a dataset split."""

    result: EvalResult
    results: list[ImageResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    dataset: Optional[Dataset] = None
    weights: Optional[Path] = None  # the checkpoint evaluated (None: an in-memory model)
    #: recall by person size at detect's default score threshold (0.3), IoU 0.25; see recall_by_size.py
    recall_by_size: list[dict[str, float]] = field(default_factory=list)
    #: the size frames were resized to for detection (None: as stored)
    frame_size: Optional[tuple[int, int]] = None
    #: the test scales the detector ran at (the model's own unless asked otherwise)
    scales: tuple[float, ...] = (1.0,)
    #: whether each scale also ran mirrored (the mirrored test)
    flip: bool = False
    #: the dense graph's arithmetic (fp32 or int8)
    precision: str = "fp32"


def detection_records(results: list[ImageResult], image_ids: dict[str, int]) -> list[dict[str, Any]]:
    """COCO result records (``image_id``, ``bbox`` [x, y, w, h], ``score``) for ``results``,
    whose ``image`` names map to ground-truth ids through ``image_ids``."""
    records = []
    for res in results:
        image_id = image_ids[res.image]
        for (x1, y1, x2, y2), score in zip(res.detections.boxes.tolist(), res.detections.scores.tolist()):
            records.append({"image_id": image_id, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    return records


def ground_truth(dataset: Dataset, keep_ids: Optional[set[int]] = None) -> dict[str, Any]:
    """The ground truth to evaluate against: the original annotation file for TinyPerson layouts
    (the benchmark sizes boxes by its ``area`` field, which is not always w*h), else the dataset's
    COCO form. ``keep_ids`` restricts it to the frames actually processed."""
    if dataset.layout == "tinyperson" and dataset.annotations is not None:
        gt = load_ground_truth(dataset.annotations)
    else:
        gt = dataset.to_coco()
    if keep_ids is not None:
        gt = dict(gt)
        gt["images"] = [im for im in gt["images"] if im["id"] in keep_ids]
        gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep_ids]
    return gt


def evaluate_detector(
    detector: Detector,
    dataset: Dataset,
    on_tiles: Optional[Callable[[int], None]] = None,
    on_frame: Optional[Callable[[str, int], None]] = None,
) -> EvalReport:
    """Detect on every frame of ``dataset`` (tiles + merge, full frames) and evaluate with the
    TinyPerson metrics. Frames that cannot be read are reported and left out of the evaluation."""
    ids = {str(im.path): im.image_id for im in dataset.images}
    stats = RunStats()
    results: list[ImageResult] = []
    failures: list[Failure] = []
    for item in detector.run([im.path for im in dataset.images], on_tiles=on_tiles, on_frame=on_frame, stats=stats):
        (failures if isinstance(item, Failure) else results).append(item)  # type: ignore[arg-type]
    done = {ids[r.image] for r in results}
    gt = ground_truth(dataset, done)
    records = detection_records(results, ids)
    result = evaluate_tinyperson(gt, records)
    scale = None
    if detector.options.frame_size is not None:  # recall by the sizes the model saw
        fw, fh = detector.options.frame_size
        scale = {im.image_id: math.sqrt(fw * fh / (im.width * im.height)) for im in dataset.images}
    recall = recall_by_size(gt, records, size_scale=scale)
    return EvalReport(
        result, results, failures, stats, dataset, detector.weights, recall, detector.options.frame_size, tuple(detector.options.scales),
        bool(detector.options.flip), detector.precision,
    )


def evaluate_model(
    model: nn.Module, dataset: Dataset, device: Union[str, torch.device] = "cpu", frame_size: Optional[tuple[int, int]] = None
) -> EvalReport:
    """An in-memory model evaluated on ``dataset`` (validation while training): its metrics and
    recall by person size (the report's per-frame results are left out). ``frame_size``: frames
    resized to it for detection, as in training (``TrainConfig.frame_size``)."""
    detector = Detector.from_model(model, device=str(device), score_thr=EVAL_SCORE_FLOOR, frame_size=frame_size)
    report = evaluate_detector(detector, dataset)
    report.results = []
    return report
