"""Reading ground truth and detection files for evaluation.

Ground truth: a COCO/TinyPerson JSON file. Detections: either a COCO results list
(``[{"image_id", "bbox", "score", ...}]`` with the ground truth's image ids) or sspnet's own
detection JSON (``{"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "bbox",
"score", ...}]}``), whose images are matched to ground-truth images by file name:

1. the same relative path;
2. else the ground truth's ``file_name`` is a path suffix of the detection image's
   (``/data/test/labeled_images/a.jpg`` matches ``labeled_images/a.jpg``; the longest wins);
3. else the same base name, if exactly one ground-truth image has it.

Malformed files raise :class:`InputError`. Bad records and detection images that match no
ground-truth image are left out and reported as warnings: one line each, ``"<file>: <problem>"``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.evaluation.inputs import box_problem, hashable, pack_ground_truth, score_problem

PathLike = Union[str, Path]

# Individual bad records reported before the rest are summarised in one line.
_MAX_RECORD_WARNINGS = 5
# Image id of detections already reported with their image (dropped without another warning).
_LEFT_OUT = object()


@dataclass
class LoadedDetections:
    """Detections ready for :func:`evaluate_tinyperson`, plus what was left out and why."""

    detections: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def _read_json(path: PathLike) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a JSON file") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"is not valid JSON ({e})") from None


def load_ground_truth(path: PathLike, category_id: int = 1) -> dict[str, Any]:
    """Read and check a COCO/TinyPerson ground-truth file; raises :class:`InputError` if unusable."""
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(path, "is not COCO ground truth (an object with an 'images' list)")
    try:
        pack_ground_truth(data, category_id)
    except SSPNetError as e:
        raise InputError(path, str(e)) from None
    return data


def load_detections(path: PathLike, gt: Mapping[str, Any], category_id: int = 1) -> LoadedDetections:
    """Read a detection file (COCO results list or sspnet detection JSON) against ``gt``.

    Returns detections whose ``image_id`` is the ground truth's; raises :class:`InputError` for
    malformed JSON, an unknown layout, or an sspnet file none of whose images match.
    """
    data = _read_json(path)
    gt_ids = {im["id"] for im in gt.get("images", []) if isinstance(im, Mapping) and "id" in im}
    if isinstance(data, list):
        return _from_records(path, data, lambda i: i if hashable(i) and i in gt_ids else None, category_id)
    if isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list):
        mapping, left_out, warnings = _match_images(path, data["images"], gt)
        if data["images"] and not mapping:
            raise InputError(path, f"none of its {len(data['images'])} images matches a ground-truth image by file name")

        def to_gt_id(image_id: Any) -> Any:
            return _LEFT_OUT if image_id in left_out else mapping.get(image_id)

        return _from_records(path, data["annotations"], to_gt_id, category_id, warnings)
    raise InputError(path, "is neither a COCO results list nor an sspnet detection file ({'images', 'annotations'})")


def _from_records(
    path: PathLike,
    records: list[Any],
    to_gt_id: Callable[[Any], Any],
    category_id: int,
    warnings: Optional[list[str]] = None,
) -> LoadedDetections:
    """Keep the well-formed records of ``category_id`` whose image maps to a ground-truth image."""
    warnings = list(warnings or [])
    out: list[dict[str, Any]] = []
    bad = 0
    unknown: dict[Any, int] = {}
    for i, rec in enumerate(records):
        problem = None
        if not isinstance(rec, dict):
            problem = "must be an object"
        elif rec.get("category_id", category_id) != category_id:
            continue
        elif "image_id" not in rec:
            problem = "needs an 'image_id'"
        else:
            problem = box_problem(rec.get("bbox")) or score_problem(rec.get("score"))
        if problem:
            bad += 1
            if bad <= _MAX_RECORD_WARNINGS:
                warnings.append(f"{path}: detection #{i}: {problem}; left out")
            continue
        try:
            gt_id = to_gt_id(rec["image_id"])
        except TypeError:  # unhashable image_id
            gt_id = None
        if gt_id is _LEFT_OUT:
            continue
        if gt_id is None:
            key = repr(rec["image_id"])
            unknown[key] = unknown.get(key, 0) + 1
            continue
        out.append({"image_id": gt_id, "category_id": category_id, "bbox": rec["bbox"], "score": rec["score"]})
    if bad > _MAX_RECORD_WARNINGS:
        warnings.append(f"{path}: {bad - _MAX_RECORD_WARNINGS} more malformed detection(s) left out")
    if unknown:
        examples = ", ".join(list(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
        warnings.append(
            f"{path}: {sum(unknown.values())} detection(s) on {len(unknown)} image(s) with no matching "
            f"ground-truth image left out (image_id {examples})"
        )
    return LoadedDetections(out, warnings)


def _norm(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _match_images(
    path: PathLike, det_images: list[Any], gt: Mapping[str, Any]
) -> tuple[dict[Any, Any], set[Any], list[str]]:
    """Map detection image ids to ground-truth image ids by file name (see the module doc).

    Returns the mapping, the ids of images reported as left out, and the warnings.
    """
    by_path: dict[str, Any] = {}
    by_base: dict[str, list[Any]] = {}
    for im in gt.get("images", []):
        if isinstance(im, Mapping) and isinstance(im.get("file_name"), str) and "id" in im:
            name = _norm(im["file_name"])
            by_path.setdefault(name, im["id"])
            by_base.setdefault(PurePosixPath(name).name, []).append(im["id"])

    mapping: dict[Any, Any] = {}
    left_out: set[Any] = set()
    taken: dict[Any, str] = {}
    warnings: list[str] = []
    unmatched: list[str] = []
    for i, im in enumerate(det_images):
        if not isinstance(im, Mapping) or "id" not in im or not isinstance(im.get("file_name"), str):
            warnings.append(f"{path}: image #{i} needs an 'id' and a 'file_name'; its detections are left out")
            continue
        if not hashable(im["id"]):
            warnings.append(f"{path}: image #{i} has an unusable id {im['id']!r}; its detections are left out")
            continue
        gt_id = _lookup(_norm(im["file_name"]), by_path, by_base)
        if gt_id is None:
            unmatched.append(im["file_name"])
            left_out.add(im["id"])
        elif gt_id in taken:
            warnings.append(
                f"{path}: images {taken[gt_id]!r} and {im['file_name']!r} both match ground-truth image "
                f"{gt_id!r}; the detections of the second are left out"
            )
            left_out.add(im["id"])
        else:
            taken[gt_id] = im["file_name"]
            mapping[im["id"]] = gt_id
    if unmatched:
        examples = ", ".join(repr(n) for n in unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
        warnings.append(
            f"{path}: {len(unmatched)} image(s) match no ground-truth image by file name and are left out ({examples})"
        )
    return mapping, left_out, warnings


def _lookup(name: str, by_path: dict[str, Any], by_base: dict[str, list[Any]]) -> Any:
    if name in by_path:
        return by_path[name]
    parts = PurePosixPath(name).parts
    for k in range(1, len(parts)):  # longest suffix first
        suffix = "/".join(parts[k:])
        if suffix in by_path:
            return by_path[suffix]
    same_base = by_base.get(PurePosixPath(name).name, [])
    return same_base[0] if len(same_base) == 1 else None
