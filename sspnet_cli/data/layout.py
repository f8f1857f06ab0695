"""Recognising a dataset's layout and opening one split of it: :func:`open_dataset`.

What is recognised, in this order, for a folder ``DIR``:

- TinyPerson: ``DIR/annotations/tiny_set_{split}.json`` (images in ``DIR/{split}/``);
- YOLO: ``DIR/data.yaml`` (or the one ``*.yaml`` with ``names``);
- COCO, Roboflow export: ``DIR/_annotations.coco.json`` (``DIR`` is one split) or
  ``DIR/{split}/_annotations.coco.json``;
- COCO: ``DIR/annotations/*.json`` (``instances_{split}*.json``; images in ``DIR/{split}*/``),
  or ``DIR/*.json``.

A path to a ``.json`` file is that one split (TinyPerson's when it is
``annotations/tiny_set_*.json``, COCO otherwise); a ``.yaml`` file is a YOLO data.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sspnet_cli.data.coco import read_coco, split_from_file_name
from sspnet_cli.data.sample import Dataset
from sspnet_cli.data.splits import resolve_split
from sspnet_cli.data.tinyperson import PREFIX as TINYPERSON_PREFIX
from sspnet_cli.data.tinyperson import tinyperson_image_dir, tinyperson_splits
from sspnet_cli.data.yolo import load_yaml, read_yolo, yolo_splits
from sspnet_cli.errors import InputError, SSPNetError

LAYOUTS = ("tinyperson", "coco", "yolo")
ROBOFLOW_COCO_FILE = "_annotations.coco.json"


@dataclass(frozen=True)
class DatasetLayout:
    """What :func:`detect_layout` found: the layout, the dataset root, and each split's
    annotation file (the data.yaml for every YOLO split). ``single`` is true when the path
    itself named one split (a JSON file or a split folder)."""

    name: str
    root: Path
    splits: dict[str, Path]
    single: bool = False


def detect_layout(path: str | Path) -> DatasetLayout:
    """Recognise the dataset at ``path`` (a folder, an annotation JSON or a data.yaml).

    Raises :class:`InputError` when ``path`` does not exist or is no dataset this module knows.
    """
    path = Path(path)
    if path.is_file():
        return _layout_of_file(path)
    if not path.is_dir():
        raise InputError(path, "no such file or folder")
    tiny = tinyperson_splits(path)
    if tiny:
        return DatasetLayout("tinyperson", path, tiny)
    data_yaml = _find_data_yaml(path)
    if data_yaml is not None:
        return _layout_of_file(data_yaml)
    if (path / ROBOFLOW_COCO_FILE).is_file():
        return DatasetLayout("coco", path.parent, {path.name: path / ROBOFLOW_COCO_FILE}, single=True)
    roboflow = {p.parent.name: p for p in sorted(path.glob(f"*/{ROBOFLOW_COCO_FILE}"))}
    if roboflow:
        return DatasetLayout("coco", path, roboflow)
    for folder in (path / "annotations", path):
        jsons = {split_from_file_name(p): p for p in sorted(folder.glob("*.json"))}
        if jsons:
            return DatasetLayout("coco", path, jsons)
    raise InputError(
        path,
        "no dataset found: expected annotations/tiny_set_{split}.json (TinyPerson), data.yaml (YOLO), "
        f"{ROBOFLOW_COCO_FILE} or annotations/*.json (COCO)",
    )


def list_splits(path: str | Path) -> list[str]:
    """The split names of the dataset at ``path``, sorted."""
    return sorted(detect_layout(path).splits)


def open_dataset(
    path: str | Path,
    split: str = "train",
    classes: Iterable[str | int] | None = None,
    *,
    image_dir: str | Path | None = None,
    require_images: bool = True,
) -> Dataset:
    """Open split ``split`` of the dataset at ``path``, whatever its layout.

    ``split`` is any split name the data uses, ``val`` and ``valid`` being one; an unknown one
    raises :class:`InputError` listing the splits found. When ``path`` is itself one split (an
    annotation JSON or a Roboflow split folder) that split is read and ``split`` is not used.
    ``classes`` picks the person class(es) by name or id where the data has several (see
    :mod:`sspnet_cli.data.classes`). ``image_dir`` (COCO/TinyPerson only) overrides where images
    are looked for; ``require_images=False`` reads ground truth without checking image files.
    """
    layout = detect_layout(path)
    name = next(iter(layout.splits)) if layout.single else resolve_split(split, layout.splits, path)
    source = layout.splits[name]
    if layout.name == "yolo":
        if image_dir is not None:
            raise SSPNetError("image_dir applies to COCO and TinyPerson data; a YOLO data.yaml names its image folders")
        return read_yolo(source, name, classes)
    if layout.name == "tinyperson":
        return read_coco(
            source,
            image_dir=image_dir if image_dir is not None else tinyperson_image_dir(layout.root, name),
            split=name,
            classes=classes,
            require_images=require_images,
            layout="tinyperson",
            root=layout.root,
            all_people=True,
        )
    return read_coco(source, image_dir=image_dir, split=name, classes=classes, require_images=require_images, root=layout.root)


def _layout_of_file(path: Path) -> DatasetLayout:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        splits = yolo_splits(load_yaml(path))
        if not splits:
            raise InputError(path, "no splits (train:, val:, test:) in data.yaml")
        return DatasetLayout("yolo", path.parent, {name: path for name in splits})
    if suffix == ".json":
        split = split_from_file_name(path)
        if path.name.startswith(TINYPERSON_PREFIX) and path.parent.name == "annotations":
            return DatasetLayout("tinyperson", path.parent.parent, {split: path}, single=True)
        root = path.parent.parent if path.parent.name == "annotations" or path.name == ROBOFLOW_COCO_FILE else path.parent
        return DatasetLayout("coco", root, {split: path}, single=True)
    raise InputError(path, "not an annotation file: expected a COCO/TinyPerson .json or a YOLO data.yaml")


def _find_data_yaml(folder: Path) -> Path | None:
    for name in ("data.yaml", "data.yml"):
        if (folder / name).is_file():
            return folder / name
    candidates = []
    for p in sorted(list(folder.glob("*.yaml")) + list(folder.glob("*.yml"))):
        try:
            data = load_yaml(p)
        except InputError:
            continue
        if "names" in data and yolo_splits(data):
            candidates.append(p)
    return candidates[0] if len(candidates) == 1 else None
