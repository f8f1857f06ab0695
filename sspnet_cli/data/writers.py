"""Writing annotated images in each layout the readers understand (used by the synthetic
dataset; also a way to convert a dataset from one layout to another).

Where images go, per layout (``name`` is the image's file name):

- ``tinyperson``: ``ROOT/{split}/labeled_images/name``, annotations in
  ``ROOT/annotations/tiny_set_{split}.json``;
- ``coco`` (Roboflow's export): ``ROOT/{split}/name`` beside ``ROOT/{split}/_annotations.coco.json``;
- ``yolo``: ``ROOT/{split}/images/name`` and ``ROOT/{split}/labels/stem.txt``, with
  ``ROOT/data.yaml`` naming the splits. Ignore regions are class 1, named ``ignore``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from sspnet_cli.data.sample import AnnotatedImage, coco_dict
from sspnet_cli.data.yolo import label_path
from sspnet_cli.errors import SSPNetError

YOLO_NAMES = ["person", "ignore"]


def image_location(layout: str, root: Path, split: str, name: str) -> tuple[Path, str]:
    """Where image ``name`` of ``split`` goes in ``layout`` under ``root``: its path and the
    ``file_name`` the annotations give it."""
    root = Path(root)
    if layout == "tinyperson":
        file_name = f"labeled_images/{name}"
        return root / split / file_name, file_name
    if layout == "coco":
        return root / split / name, name
    if layout == "yolo":
        file_name = f"{split}/images/{name}"
        return root / file_name, file_name
    raise SSPNetError(f"unknown layout {layout!r}; choose tinyperson, coco or yolo")


def write_annotations(layout: str, root: Path, split: str, images: Sequence[AnnotatedImage]) -> None:
    """Write the annotations of ``images`` (already at :func:`image_location`) for ``split``.
    For YOLO, also call :func:`write_yolo_yaml` once all splits are written."""
    root = Path(root)
    if layout == "tinyperson":
        _write_json(root / "annotations" / f"tiny_set_{split}.json", _with_tinyperson_keys(coco_dict(images)))
    elif layout == "coco":
        _write_json(root / split / "_annotations.coco.json", coco_dict(images))
    elif layout == "yolo":
        for im in images:
            _write_yolo_labels(label_path(im.path), im)
    else:
        raise SSPNetError(f"unknown layout {layout!r}; choose tinyperson, coco or yolo")


def yolo_split_key(split: str) -> str:
    """The data.yaml key of a split: ``val`` for valid/validation (what Ultralytics expects)."""
    return "val" if split.lower() in ("val", "valid", "validation") else split


def write_yolo_yaml(root: Path, splits: Sequence[str]) -> Path:
    """``ROOT/data.yaml`` pointing each split at ``{split}/images``; returns its path."""
    data: dict[str, object] = {yolo_split_key(s): f"{s}/images" for s in splits}
    data["nc"] = len(YOLO_NAMES)
    data["names"] = list(YOLO_NAMES)
    path = Path(root) / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _with_tinyperson_keys(data: dict) -> dict:
    """TinyPerson's annotations carry two more flags, always false here."""
    data["type"] = "instance"
    for ann in data["annotations"]:
        ann["logo"] = False
        ann["in_dense_image"] = False
    return data


def _write_yolo_labels(path: Path, im: AnnotatedImage) -> None:
    lines = []
    for cls, boxes in ((0, im.boxes), (1, im.ignore_boxes)):
        b = boxes.astype(np.float64)
        cx = (b[:, 0] + b[:, 2]) / 2 / im.width
        cy = (b[:, 1] + b[:, 3]) / 2 / im.height
        w = (b[:, 2] - b[:, 0]) / im.width
        h = (b[:, 3] - b[:, 1]) / im.height
        # repr() keeps every digit, so the reader gets the same float32 pixels back
        lines += [f"{cls} {float(a)!r} {float(c)!r} {float(d)!r} {float(e)!r}" for a, c, d, e in zip(cx, cy, w, h)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
