"""``evaluate``: TinyPerson AP and miss rates of a checkpoint on a dataset split, or of a
detections file against a ground-truth file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Union

from sspnet_cli.data import open_dataset
from sspnet_cli.evaluation import EvalResult, evaluate_files
from sspnet_cli.evaluation.run import EVAL_SCORE_FLOOR, EvalReport, evaluate_detector
from sspnet_cli.inference.engine import Detector

PathLike = Union[str, Path]


def evaluate(
    weights: Optional[PathLike] = None,
    data: PathLike = "data",
    split: str = "test",
    device: str = "auto",
    *,
    on_frame: Optional[Callable[[str, int], None]] = None,
    on_tiles: Optional[Callable[[int], None]] = None,
    **options: Any,
) -> EvalReport:
    """Evaluate a checkpoint (default: the shipped model) on a dataset split, with the detect
    pipeline on full frames and every detection down to the model's 0.05 floor; ``options`` are
    :class:`~sspnet_cli.inference.engine.DetectOptions` fields (``tile``, ``scales``...)."""
    options.setdefault("score_thr", EVAL_SCORE_FLOOR)
    dataset = open_dataset(data, split=split)
    return evaluate_detector(Detector(weights, device=device, **options), dataset, on_tiles=on_tiles, on_frame=on_frame)


def evaluate_detections(gt: PathLike, detections: PathLike) -> EvalResult:
    """The same metrics for a detections file (a COCO results list, or the ``.json`` that
    ``detect`` writes) against a ground-truth file."""
    return evaluate_files(gt, detections)
