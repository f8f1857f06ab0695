"""YOLO / Roboflow YOLO exports: ``data.yaml`` + ``images/`` + ``labels/*.txt``.

``data.yaml`` gives each split's images (a folder, a list of folders, or a ``.txt`` list of image
paths) relative to its ``path:`` key, or to the yaml's folder; Roboflow's ``../train/images``,
which means ``train/images`` beside the yaml, is accepted the way Ultralytics accepts it. The
label file of ``.../images/a/b.jpg`` is ``.../labels/a/b.txt`` (the last ``images`` folder of the
path replaced by ``labels``); a missing label file is an image without people.

Label lines are ``cls cx cy w h`` or polygons ``cls x1 y1 x2 y2 ...`` (normalised to [0, 1]);
a polygon becomes its enclosing box. Image sizes come from file headers only.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from sspnet_cli.data.classes import ClassChoice, choose_classes
from sspnet_cli.imagery.imagesize import read_image_size
from sspnet_cli.data.sample import AnnotatedImage, Dataset, Problem
from sspnet_cli.data.splits import resolve_split
from sspnet_cli.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# data.yaml keys that are not splits even when they hold a path
_NOT_SPLITS = frozenset({"path", "download", "yaml_file", "names", "nc"})
# normalised coordinates may overshoot [0, 1] by this much (rounding in exporters)
_TOLERANCE = 0.01


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a data.yaml; invalid YAML raises :class:`InputError` naming the line and column."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "data.yaml not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read data.yaml: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(path, f"invalid YAML{at}: {reason}") from None
    if not isinstance(data, dict):
        raise InputError(path, "not a YOLO data.yaml: the top level is not a mapping")
    return data


def yolo_splits(data: dict[str, Any]) -> dict[str, Any]:
    """Split name -> image source (a path or a list of paths) of a parsed data.yaml."""
    out = {}
    for key, value in data.items():
        if not isinstance(key, str) or key in _NOT_SPLITS:
            continue
        if isinstance(value, str) and value.strip():
            out[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = value
    return out


def yolo_class_names(data: dict[str, Any], source: Path) -> dict[int, str]:
    """``names`` of a data.yaml (list or dict) as id -> name; ``nc`` alone gives unnamed ids."""
    names = data.get("names")
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise InputError(source, "names: keys must be class ids (0, 1, ...)") from None
    nc = data.get("nc")
    if isinstance(nc, int) and nc > 0:
        return {i: str(i) for i in range(nc)}
    raise InputError(source, "no names (or nc) in data.yaml")


def label_path(image_path: Path) -> Path:
    """The label file of an image: its last ``images`` folder replaced by ``labels``, ``.txt``."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo(
    yaml_path: str | Path,
    split: str = "train",
    classes: Iterable[str | int] | None = None,
) -> Dataset:
    """Read split ``split`` (``val``/``valid`` aliases accepted) of the YOLO dataset described by
    ``yaml_path``. Class rule as for COCO (:mod:`sspnet_cli.data.classes`)."""
    yaml_path = Path(yaml_path)
    data = load_yaml(yaml_path)
    splits = yolo_splits(data)
    name = resolve_split(split, splits, yaml_path)
    choice = choose_classes(yolo_class_names(data, yaml_path), classes, yaml_path)
    base = _base_dir(yaml_path, data)
    problems: list[Problem] = []
    paths = _split_images(splits[name], base, yaml_path, name, problems)

    images: list[AnnotatedImage] = []
    labels_found = 0
    for path in paths:
        try:
            width, height = read_image_size(path)
        except InputError as e:
            problems.append(Problem(str(path), "image", e.problem))
            continue
        lp = label_path(path)
        im = AnnotatedImage(path=path, image_id=len(images), file_name=_relative(path, base), width=width, height=height)
        if lp.is_file():
            labels_found += 1
            _read_label_file(lp, im, choice, problems)
        images.append(im)
    if images and not labels_found:
        problems.append(Problem(str(yaml_path), f"split {name}", "no label files found (labels/ beside images/)"))
    return Dataset(root=base, split=name, layout="yolo", images=images, problems=problems, annotations=yaml_path)


def _base_dir(yaml_path: Path, data: dict[str, Any]) -> Path:
    here = yaml_path.parent
    root = data.get("path")
    if isinstance(root, str) and root.strip():
        p = Path(root).expanduser()
        p = _normalise(p if p.is_absolute() else here / p)
        if p.is_dir():
            return p
    return here


def _resolve(entry: str, base: Path) -> Path:
    p = Path(entry).expanduser()
    if p.is_absolute():
        return p
    x = _normalise(base / p)
    if not x.exists() and entry.startswith("../"):
        x = _normalise(base / entry[3:])  # Roboflow writes ../train/images for train/images beside the yaml
    return x


def _normalise(path: Path) -> Path:
    """``a/b/../c`` -> ``a/c`` without resolving links (so paths stay as the user wrote them)."""
    return Path(os.path.normpath(path))


def _split_images(source: Any, base: Path, yaml_path: Path, split: str, problems: list[Problem]) -> list[Path]:
    entries = source if isinstance(source, list) else [source]
    paths: list[Path] = []
    for entry in entries:
        p = _resolve(entry, base)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif p.is_file() and p.suffix.lower() == ".txt":
            paths += _image_list(p, base, problems)
        else:
            raise InputError(yaml_path, f"{split}: {entry} not found (looked for {p})")
    return paths


def _image_list(list_file: Path, base: Path, problems: list[Problem]) -> list[Path]:
    out = []
    for n, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        p = list_file.parent / line[2:] if line.startswith("./") else _resolve(line, base)
        if p.is_file():
            out.append(p)
        else:
            problems.append(Problem(str(list_file), f"line {n}", f"image file not found: {p}"))
    return out


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _read_label_file(path: Path, im: AnnotatedImage, choice: ClassChoice, problems: list[Problem]) -> None:
    """Parse one label file into ``im``'s boxes; bad lines go to ``problems``."""
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(src, "file", f"cannot read label file: {e}"))
        return
    people, people_ids, ignore, ignore_ids = [], [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        box, cls, why = _parse_line(fields, im.width, im.height)
        if box is None:
            problems.append(Problem(src, f"line {n}", f"{why}: {line.strip()!r}"))
            continue
        if cls in choice.person:
            people.append(box)
            people_ids.append(n)
        elif cls in choice.ignore:
            ignore.append(box)
            ignore_ids.append(n)
        elif cls not in choice.known:
            problems.append(Problem(src, f"line {n}", f"class {cls} is not in data.yaml names"))
    im.boxes = np.asarray(people, dtype=np.float32).reshape(-1, 4)
    im.box_ids = np.asarray(people_ids, dtype=np.int64)
    im.ignore_boxes = np.asarray(ignore, dtype=np.float32).reshape(-1, 4)
    im.ignore_flags = np.tile(np.array([True, False, False]), (len(ignore), 1)).reshape(-1, 3)
    im.ignore_ids = np.asarray(ignore_ids, dtype=np.int64)


def _parse_line(fields: list[str], width: int, height: int) -> tuple[list[float] | None, int, str]:
    """``cls cx cy w h`` or ``cls x1 y1 x2 y2 x3 y3 ...`` -> pixel xyxy box, class, or why not."""
    try:
        values = [float(v) for v in fields]
    except ValueError:
        return None, -1, "not numbers"
    if not all(math.isfinite(v) for v in values):
        return None, -1, "not finite"
    cls = int(values[0])
    if cls != values[0] or cls < 0:
        return None, -1, "class is not a non-negative integer"
    coords = values[1:]
    if any(v < -_TOLERANCE or v > 1 + _TOLERANCE for v in coords):
        return None, cls, "coordinates are not normalised to [0, 1]"
    if len(coords) == 4:
        cx, cy, w, h = coords
        if w <= 0 or h <= 0:
            return None, cls, "non-positive box size"
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    elif len(coords) >= 6 and len(coords) % 2 == 0:
        xs, ys = coords[0::2], coords[1::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        if x2 <= x1 or y2 <= y1:
            return None, cls, "polygon encloses no area"
    else:
        return None, cls, f"expected 5 values (cls cx cy w h) or a polygon (cls and 3+ x y pairs), got {len(fields)}"
    return [x1 * width, y1 * height, x2 * width, y2 * height], cls, ""
