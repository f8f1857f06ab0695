"""TinyPerson's layout: ``DIR/annotations/tiny_set_{split}.json`` with images under
``DIR/{split}/`` (``file_name`` relative to it, e.g. ``labeled_images/x.jpg``).

The JSON is COCO with TinyPerson's flags (``ignore``, ``uncertain``, plus ``logo`` and
``in_dense_image``, which are not ignore flags). Every category is a person (the benchmark's
``sea_person`` and ``earth_person`` are one class for detection) unless ``classes`` narrows it.
Files like ``tiny_set_train_with_dense.json`` are splits of their own whose images live in the
folder of the split they extend (``train/``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from sspnet_cli.data.coco import read_coco
from sspnet_cli.data.sample import Dataset
from sspnet_cli.data.splits import resolve_split
from sspnet_cli.errors import InputError

PREFIX = "tiny_set_"


def tinyperson_splits(root: Path) -> dict[str, Path]:
    """Split name -> annotation file of a TinyPerson-layout folder (empty if it is not one)."""
    ann_dir = Path(root) / "annotations"
    return {p.stem[len(PREFIX):]: p for p in sorted(ann_dir.glob(f"{PREFIX}*.json")) if len(p.stem) > len(PREFIX)}


def tinyperson_image_dir(root: Path, split: str) -> Path:
    """``root/{split}``, or for a derived split (``train_with_dense``) the folder of the split
    it extends, the longest ``_``-separated prefix that exists."""
    parts = split.split("_")
    for n in range(len(parts), 0, -1):
        cand = root / "_".join(parts[:n])
        if cand.is_dir():
            return cand
    return root / split


def read_tinyperson(
    root: str | Path,
    split: str = "train",
    classes: Iterable[str | int] | None = None,
    require_images: bool = True,
) -> Dataset:
    """Read split ``split`` (``val``/``valid`` aliases accepted) of the TinyPerson-layout folder
    ``root``. See :func:`sspnet_cli.data.coco.read_coco` for ``classes`` and ``require_images``."""
    root = Path(root)
    splits = tinyperson_splits(root)
    if not splits:
        raise InputError(root, f"not a TinyPerson folder: no annotations/{PREFIX}*.json")
    name = resolve_split(split, splits, root)
    return read_coco(
        splits[name],
        image_dir=tinyperson_image_dir(root, name),
        split=name,
        classes=classes,
        require_images=require_images,
        layout="tinyperson",
        root=root,
        all_people=True,
    )
