"""Ground truth and detections as validated, sorted numpy arrays.

Order matters for the benchmark's tie-breaking, so it is kept exactly:
- images are sorted by id (the reference evaluates ``np.unique`` of the image ids);
- ground truth stays in file order within each image;
- detections are sorted by descending score within each image, ties in input order (a stable
  sort, as the reference's mergesort), and only the first ``MR_MAX_DETS`` of an image are kept
  (no metric looks further).
"""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.evaluation.protocol import MR_MAX_DETS


@dataclass(frozen=True)
class GroundTruthArrays:
    """Ground-truth boxes of one category, grouped by image (file order within an image)."""

    image_ids: list[Any]  # sorted, unique
    img: np.ndarray  # (G,) int64 index into image_ids, non-decreasing
    boxes: np.ndarray  # (G, 4) float64 x, y, w, h
    area: np.ndarray  # (G,) float64: the ``area`` field where given, else w*h
    ignore: np.ndarray  # (G,) bool: the ``ignore`` flag
    uncertain: np.ndarray  # (G,) bool
    crowd: np.ndarray  # (G,) bool: ``iscrowd``
    id_is_zero: np.ndarray  # (G,) bool: annotation id 0 (see tinyperson.py)

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def __len__(self) -> int:
        return int(self.img.shape[0])


@dataclass(frozen=True)
class DetectionArrays:
    """Detections sorted by image, then by descending score (stable)."""

    img: np.ndarray  # (D,) int64 index into GroundTruthArrays.image_ids, non-decreasing
    rank: np.ndarray  # (D,) int64 position within its image, 0 = highest score
    boxes: np.ndarray  # (D, 4) float64 x, y, w, h
    scores: np.ndarray  # (D,) float64
    global_order: np.ndarray  # (D,) int64: all detections by descending score, stable

    def __len__(self) -> int:
        return int(self.img.shape[0])


def _flag(value: Any, where: str, name: str) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return bool(value)
    raise SSPNetError(f"{where}: {name!r} must be a boolean or 0/1, got {value!r}")


def box_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a usable ``[x, y, w, h]`` box, or None if it is."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return f"'bbox' must be a list [x, y, w, h], got {value!r}"
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"'bbox' must hold 4 finite numbers, got {value!r}"
    if value[2] < 0 or value[3] < 0:
        return f"'bbox' width and height must be >= 0, got {value!r}"
    return None


def score_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a usable score, or None if it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"'score' must be a finite number, got {value!r}"
    return None


def _box(value: Any, where: str) -> list[float]:
    problem = box_problem(value)
    if problem:
        raise SSPNetError(f"{where}: {problem}")
    return [float(v) for v in value]


def pack_ground_truth(gt: Mapping[str, Any], category_id: int = 1) -> tuple[GroundTruthArrays, list[str]]:
    """Validate a COCO/TinyPerson ground-truth dict and return its arrays plus warnings.

    Annotations of other categories are left out (a missing ``category_id`` means person), as
    are annotations of images not listed in ``images`` (as the reference does; a warning says
    how many). A malformed record raises :class:`SSPNetError` naming it.
    """
    if not isinstance(gt, Mapping):
        raise SSPNetError(f"ground truth must be a COCO-style object, got {type(gt).__name__}")
    images = gt.get("images")
    anns = gt.get("annotations", [])
    if not isinstance(images, list):
        raise SSPNetError("ground truth has no 'images' list")
    if not isinstance(anns, list):
        raise SSPNetError("ground truth 'annotations' must be a list")
    ids = []
    for i, im in enumerate(images):
        if not isinstance(im, Mapping) or "id" not in im:
            raise SSPNetError(f"ground-truth image #{i}: needs an 'id'")
        ids.append(im["id"])
    try:
        image_ids = sorted(set(ids))
    except TypeError:
        raise SSPNetError("ground-truth image ids must be numbers or strings, all of one kind") from None
    index = {im_id: k for k, im_id in enumerate(image_ids)}

    img: list[int] = []
    boxes: list[list[float]] = []
    areas: list[float] = []
    flags: list[tuple[bool, bool, bool, bool]] = []  # ignore, uncertain, iscrowd, id == 0
    ann_ids: list[Any] = []
    outside: list[str] = []
    degenerate: list[str] = []
    other_cat = 0
    for i, ann in enumerate(anns):
        where = f"ground-truth annotation #{i}"
        if not isinstance(ann, Mapping):
            raise SSPNetError(f"{where}: must be an object")
        if ann.get("category_id", category_id) != category_id:
            other_cat += 1
            continue
        if "image_id" not in ann:
            raise SSPNetError(f"{where}: needs an 'image_id'")
        k = index.get(ann["image_id"]) if hashable(ann["image_id"]) else None
        if k is None:
            outside.append(f"#{i} (id {ann.get('id')!r}, image_id {ann['image_id']!r})")
            continue
        box = _box(ann.get("bbox"), where)
        if box[2] <= 0 or box[3] <= 0:
            # kept, as the benchmark keeps them: a zero-area box lies outside every size range
            degenerate.append(f"#{i} (id {ann.get('id')!r}, bbox {ann.get('bbox')!r})")
        area = ann.get("area")
        if area is None:
            area = box[2] * box[3]
        elif isinstance(area, bool) or not isinstance(area, (int, float)) or not math.isfinite(area) or area < 0:
            raise SSPNetError(f"{where}: 'area' must be a finite number >= 0, got {area!r}")
        ann_id = ann.get("id")
        ann_ids.append(ann_id)
        img.append(k)
        boxes.append(box)
        areas.append(float(area))
        flags.append((
            _flag(ann.get("ignore"), where, "ignore"),
            _flag(ann.get("uncertain"), where, "uncertain"),
            _flag(ann.get("iscrowd"), where, "iscrowd"),
            ann_id == 0 and not isinstance(ann_id, bool),
        ))
    warnings = []
    seen_ids = Counter(i for i in ann_ids if i is not None and hashable(i))
    shared = sum(n for n in seen_ids.values() if n > 1)
    if shared:
        warnings.append(
            f"{shared} ground-truth annotations share an id with another; each is evaluated "
            "(TinyBenchmark's code, which indexes annotations by id, would not)"
        )
    if outside:
        warnings.append(
            f"{len(outside)} ground-truth annotation(s) refer to images not listed in 'images' and were left out: "
            + _first(outside)
        )
    if degenerate:
        warnings.append(f"{len(degenerate)} ground-truth annotation(s) have zero width or height: " + _first(degenerate))
    if other_cat:
        warnings.append(f"{other_cat} ground-truth annotation(s) of categories other than {category_id} were left out")

    img_arr = np.array(img, dtype=np.int64)
    order = np.argsort(img_arr, kind="stable")
    flag_arr = np.array(flags, dtype=bool).reshape(-1, 4)[order]
    arrays = GroundTruthArrays(
        image_ids=image_ids,
        img=img_arr[order],
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4)[order],
        area=np.array(areas, dtype=np.float64)[order],
        ignore=flag_arr[:, 0],
        uncertain=flag_arr[:, 1],
        crowd=flag_arr[:, 2],
        id_is_zero=flag_arr[:, 3],
    )
    return arrays, warnings


def _first(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def hashable(value: Any) -> bool:
    """Whether ``value`` can be a dict key (image ids from JSON can be lists or objects)."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def pack_detections(
    detections: Sequence[Mapping[str, Any]], gt: GroundTruthArrays, category_id: int = 1
) -> DetectionArrays:
    """Validate a COCO results list against packed ground truth and return sorted arrays.

    Each record needs ``image_id`` (an image of the ground truth), ``bbox`` [x, y, w, h] with
    w, h >= 0 and a finite ``score``; records of another ``category_id`` are left out.
    """
    index = {im_id: k for k, im_id in enumerate(gt.image_ids)}
    packed = _pack_detections_fast(detections, index, category_id)
    if packed is None:  # something is off: find and name the first bad record
        packed = _pack_detections_checked(detections, index, category_id)
    return sort_detections(*packed)


def _pack_detections_fast(
    detections: Sequence[Mapping[str, Any]], index: dict[Any, int], category_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Bulk conversion for well-formed input (a million records in about a second); None when
    any record is malformed."""
    try:
        dets = [d for d in detections if d.get("category_id", category_id) == category_id]
        img = np.fromiter((index[d["image_id"]] for d in dets), np.int64, len(dets))
        box_lists = [d["bbox"] for d in dets]
        if not {type(b) for b in box_lists} <= {list, tuple} or not set(map(len, box_lists)) <= {4}:
            return None
        boxes = np.fromiter(itertools.chain.from_iterable(box_lists), np.float64, 4 * len(dets)).reshape(-1, 4)
        scores = np.fromiter((d["score"] for d in dets), np.float64, len(dets))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()) or (boxes[:, 2:] < 0).any():
        return None
    return img, boxes, scores


def _pack_detections_checked(
    detections: Sequence[Mapping[str, Any]], index: dict[Any, int], category_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img, boxes, scores = [], [], []
    for i, det in enumerate(detections):
        where = f"detection #{i}"
        if not isinstance(det, Mapping):
            raise SSPNetError(f"{where}: must be an object")
        if det.get("category_id", category_id) != category_id:
            continue
        im_id = det.get("image_id")
        k = index.get(im_id) if hashable(im_id) else None
        if k is None:
            raise SSPNetError(f"{where}: image_id {im_id!r} is not an image of the ground truth")
        score = det.get("score")
        problem = score_problem(score)
        if problem:
            raise SSPNetError(f"{where}: {problem}")
        img.append(k)
        boxes.append(_box(det.get("bbox"), where))
        scores.append(float(score))
    return (
        np.array(img, dtype=np.int64),
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array(scores, dtype=np.float64),
    )


def sort_detections(img: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> DetectionArrays:
    """Sort validated detection arrays into benchmark order and cut each image at MR_MAX_DETS."""
    order = np.lexsort((-scores, img))  # lexsort is stable: ties keep input order
    img, boxes, scores = img[order], boxes[order], scores[order]
    starts = np.searchsorted(img, img, side="left")
    rank = np.arange(len(img), dtype=np.int64) - starts
    keep = rank < MR_MAX_DETS
    img, boxes, scores, rank = img[keep], boxes[keep], scores[keep], rank[keep]
    # The reference concatenates the per-image lists in image order, then sorts stably by score.
    global_order = np.argsort(-scores, kind="stable")
    return DetectionArrays(img=img, rank=rank, boxes=boxes, scores=scores, global_order=global_order)
