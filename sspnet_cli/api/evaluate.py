"""``evaluate``: TinyPerson AP and miss rates of a checkpoint on a dataset split, or of a
detections file against a ground-truth file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Union

from sspnet_cli.config import training_frame_size
from sspnet_cli.data import open_dataset
from sspnet_cli.errors import SSPNetError
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
    frame_size: Union[str, tuple[int, int], None] = "training",
    **options: Any,
) -> EvalReport:
    """Evaluate a checkpoint (default: the shipped model) on a dataset split, with the detect
    pipeline on full frames and every detection down to the model's 0.05 floor; ``options`` are
    :class:`~sspnet_cli.inference.engine.DetectOptions` fields (``tile``, ``scales``...).

    ``frame_size``: ``"training"`` resizes the frames as the checkpoint's training did (its
    ``--frame-size``; frames as stored when it recorded none), a ``(width, height)`` resizes
    to that, None keeps the frames as stored. Metrics are always in the stored frames' pixels;
    the size used is the report's ``frame_size``."""
    options.setdefault("score_thr", EVAL_SCORE_FLOOR)
    dataset = open_dataset(data, split=split)
    detector = Detector(weights, device=device, **options)
    if frame_size == "training":
        frame_size = training_frame_size(detector.meta)
    elif isinstance(frame_size, str):
        raise SSPNetError(f"frame_size must be 'training', (width, height) or None, got {frame_size!r}")
    if frame_size is not None:
        detector = detector.with_options(frame_size=(int(frame_size[0]), int(frame_size[1])))
    return evaluate_detector(detector, dataset, on_tiles=on_tiles, on_frame=on_frame)


def evaluate_detections(gt: PathLike, detections: PathLike) -> EvalResult:
    """The same metrics for a detections file (a COCO results list, or the ``.json`` that
    ``detect`` writes) against a ground-truth file."""
    return evaluate_files(gt, detections)
