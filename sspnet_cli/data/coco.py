"""COCO-style annotation JSON (generic COCO, Roboflow's COCO export, and TinyPerson, which is
COCO with flags) -> :class:`~sspnet_cli.data.sample.Dataset`.

Only annotations are read; image files are checked for existence, and opened (header only) just
when an image record lacks its width or height. Records that cannot be used are skipped and
reported in ``Dataset.problems`` with where they are; a file that is not a COCO JSON at all is
refused with :class:`~sspnet_cli.errors.InputError`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from sspnet_cli.data.classes import ClassChoice, choose_classes
from sspnet_cli.imagery.imagesize import read_image_size
from sspnet_cli.data.sample import AnnotatedImage, Dataset, Problem
from sspnet_cli.data.splits import split_aliases
from sspnet_cli.errors import InputError

# how many image records the image-folder search looks at
_PROBE = 25


def load_json(path: Path) -> Any:
    """Parse the JSON file at ``path``; unreadable or invalid JSON raises :class:`InputError`
    naming the line and column of the error."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise InputError(path, "annotation file not found") from None
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise InputError(path, f"invalid JSON: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InputError(path, f"cannot read annotation file: {e.strerror or e}") from None


def read_coco(
    json_path: str | Path,
    image_dir: str | Path | None = None,
    split: str | None = None,
    classes: Iterable[str | int] | None = None,
    require_images: bool = True,
    *,
    layout: str = "coco",
    root: str | Path | None = None,
    all_people: bool = False,
) -> Dataset:
    """Read a COCO annotation file.

    ``image_dir`` is where ``file_name`` is relative to; by default the folder among the usual
    places (beside the JSON, ``images/``, ``../{split}``, ...) where the most files exist.
    ``split`` only labels the dataset (default: guessed from the file name). ``classes`` picks the
    person categories (see :mod:`sspnet_cli.data.classes`); ``all_people`` takes every category
    (TinyPerson). ``require_images=False`` skips the check that image files exist (ground truth
    for evaluation only); image records then need their width and height.
    """
    json_path = Path(json_path)
    data = load_json(json_path)
    if not isinstance(data, dict):
        raise InputError(json_path, f"not a COCO annotation file: the top level is a JSON {type(data).__name__}, not an object")
    records = data.get("images")
    if not isinstance(records, list):
        raise InputError(json_path, "not a COCO annotation file: no \"images\" list")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise InputError(json_path, "\"annotations\" is not a list")
    if any(isinstance(r, dict) and "corner" in r for r in records):
        # TinyPerson's pre-cut "corner" files: boxes are relative to sub-images of the frame
        raise InputError(
            json_path,
            "pre-cut 'corner' annotations are not supported; use the full-frame tiny_set_{split}.json "
            "(training patches are cut by sspnet itself)",
        )
    split = split or split_from_file_name(json_path)
    file_names = [r["file_name"] for r in records if isinstance(r, dict) and isinstance(r.get("file_name"), str)]
    image_dir = Path(image_dir) if image_dir is not None else find_image_dir(json_path, file_names, split)
    names, used = _category_names(data, annotations)
    choice = _class_choice(data, names, used, classes, json_path, all_people)

    problems: list[Problem] = []
    src = str(json_path)
    images, index_of = _read_images(records, image_dir, require_images, src, problems)
    if require_images and records and not images and any(p.message.startswith("image file not found") for p in problems):
        raise InputError(
            json_path,
            f"none of its {len(records)} images are under {image_dir}; give the image folder explicitly",
        )
    _read_annotations(annotations, images, index_of, names, choice, src, problems)
    return Dataset(
        root=Path(root) if root is not None else _dataset_root(json_path),
        split=split,
        layout=layout,
        images=images,
        problems=problems,
        annotations=json_path,
    )


def _read_annotations(
    annotations: list[Any],
    images: list[AnnotatedImage],
    index_of: dict[int | str, int | None],
    names: dict[int, str],
    choice: ClassChoice,
    src: str,
    problems: list[Problem],
) -> None:
    """Fill the images' boxes from the annotation records; bad records go to ``problems``."""
    people: list[list[tuple[list[float], int]]] = [[] for _ in images]
    ignored: list[list[tuple[list[float], tuple[bool, bool, bool], int]]] = [[] for _ in images]
    for j, ann in enumerate(annotations):
        where = f"annotations[{j}]"
        if not isinstance(ann, dict):
            problems.append(Problem(src, where, "not a JSON object"))
            continue
        ann_id = ann.get("id")
        if ann_id is not None:
            where += f" (id {ann_id})"
        image_key = ann.get("image_id")
        if not isinstance(image_key, (int, str)) or isinstance(image_key, bool):
            problems.append(Problem(src, where, f"image_id {image_key!r} is not an id"))
            continue
        if image_key not in index_of:
            problems.append(Problem(src, where, f"unknown image id {image_key!r}"))
            continue
        k = index_of[image_key]
        if k is None:
            continue  # its image was skipped and reported already
        category = ann.get("category_id")
        if category not in choice.person and category not in choice.ignore:
            if category not in names:
                problems.append(Problem(src, where, f"unknown category id {category!r}"))
            continue
        box, why = _parse_bbox(ann.get("bbox"), images[k].width, images[k].height)
        if box is None:
            problems.append(Problem(src, where, why))
            continue
        flags = (_flag(ann.get("ignore")), _flag(ann.get("uncertain")), _flag(ann.get("iscrowd")))
        if category in choice.ignore and not any(flags):
            flags = (True, False, False)
        aid = ann_id if type(ann_id) is int else -1
        if any(flags):
            ignored[k].append((box, flags, aid))
        else:
            people[k].append((box, aid))

    for im, ps, igs in zip(images, people, ignored):
        im.boxes = np.asarray([b for b, _ in ps], dtype=np.float32).reshape(-1, 4)
        im.box_ids = np.asarray([i for _, i in ps], dtype=np.int64)
        im.ignore_boxes = np.asarray([b for b, _, _ in igs], dtype=np.float32).reshape(-1, 4)
        im.ignore_flags = np.asarray([f for _, f, _ in igs], dtype=bool).reshape(-1, 3)
        im.ignore_ids = np.asarray([i for _, _, i in igs], dtype=np.int64)


def split_from_file_name(json_path: Path) -> str:
    """The split a COCO file names: ``instances_val2017.json`` -> ``val2017``,
    ``tiny_set_test.json`` -> ``test``, ``train/_annotations.coco.json`` -> ``train``."""
    name = json_path.name
    if name == "_annotations.coco.json":
        return json_path.parent.name
    stem = json_path.stem
    for prefix in ("tiny_set_", "instances_", "image_info_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix):]
    return stem


def find_image_dir(json_path: Path, file_names: list[str], split: str) -> Path:
    """The folder ``file_names`` are relative to: of the usual places, the one where most of the
    first few exist (the first candidate when none does)."""
    here = json_path.parent
    candidates = [here]
    if here.name == "annotations":
        root = here.parent
        for name in split_aliases(split):
            candidates += [root / name, root / "images" / name]
        candidates += sorted(p for p in root.glob(f"{split}*") if p.is_dir())
        candidates += [root / "images", root]
    candidates += [here / "images", here / split]
    probe = file_names[:: max(1, len(file_names) // _PROBE)][:_PROBE]
    best, best_hits = candidates[0], 0
    for cand in candidates:
        if not cand.is_dir():
            continue
        hits = sum((cand / f).is_file() for f in probe)
        if hits > best_hits:
            best, best_hits = cand, hits
            if hits == len(probe):
                break
    return best


def _dataset_root(json_path: Path) -> Path:
    here = json_path.parent
    if here.name == "annotations" or json_path.name == "_annotations.coco.json":
        return here.parent
    return here


def _read_images(
    records: list[Any], image_dir: Path, require_images: bool, src: str, problems: list[Problem]
) -> tuple[list[AnnotatedImage], dict[int | str, int | None]]:
    """Image records -> images (in file order) and a map id -> index (None: record skipped)."""
    int_ids = {r.get("id") for r in records if isinstance(r, dict) and type(r.get("id")) is int}
    next_id = max(int_ids, default=-1) + 1
    images: list[AnnotatedImage] = []
    index_of: dict[int | str, int | None] = {}
    for i, rec in enumerate(records):
        where = f"images[{i}]"
        if not isinstance(rec, dict):
            problems.append(Problem(src, where, "not a JSON object"))
            continue
        key = rec.get("id")
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            problems.append(Problem(src, where, f"id {key!r} is not an id"))
            continue
        where += f" (id {key})"
        if key in index_of:
            problems.append(Problem(src, where, f"duplicate image id {key!r}; the later record is skipped"))
            continue
        index_of[key] = None
        file_name = rec.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            problems.append(Problem(src, where, "no file_name"))
            continue
        path = image_dir / file_name
        if require_images and not path.is_file():
            problems.append(Problem(src, where, f"image file not found: {path}"))
            continue
        width, height = _positive_int(rec.get("width")), _positive_int(rec.get("height"))
        if width is None or height is None:
            try:
                width, height = read_image_size(path)
            except InputError as e:
                problems.append(Problem(src, where, f"no valid width/height and {e.problem}: {path}"))
                continue
        if isinstance(key, int):
            image_id = key
        else:  # string ids (some exporters) get fresh integer ids
            image_id, next_id = next_id, next_id + 1
        index_of[key] = len(images)
        images.append(AnnotatedImage(path=path, image_id=image_id, file_name=file_name, width=width, height=height))
    return images, index_of


def _category_names(data: dict[str, Any], annotations: list[Any]) -> tuple[dict[int, str], set[Any]]:
    """Declared categories (id -> name; the ids the annotations use, unnamed, when the file
    declares none) and the category ids the annotations use."""
    used = {a.get("category_id") for a in annotations if isinstance(a, dict)}
    names: dict[int, str] = {}
    categories = data.get("categories")
    if isinstance(categories, list):
        for c in categories:
            if isinstance(c, dict) and type(c.get("id")) is int:
                names[c["id"]] = str(c.get("name", c["id"]))
    if not names:
        names = {i: str(i) for i in used if type(i) is int}
    return names, used


def _class_choice(
    data: dict[str, Any],
    names: dict[int, str],
    used: set[Any],
    classes: Iterable[str | int] | None,
    src: Path,
    all_people: bool,
) -> ClassChoice:
    if classes is None and isinstance(data.get("categories"), list):
        names = _drop_roboflow_placeholder(data["categories"], names, used)
    return choose_classes(names, classes, src, all_people=all_people)


def _drop_roboflow_placeholder(categories: list[Any], names: dict[int, str], used: set[Any]) -> dict[int, str]:
    """Roboflow's COCO export adds a category named after the project that is the
    ``supercategory`` of the real ones and holds no annotation; it is not a class."""
    supers = {
        c["id"]: str(c.get("supercategory"))
        for c in categories
        if isinstance(c, dict) and type(c.get("id")) is int
    }
    placeholders = {
        i for i, n in names.items()
        if i not in used and any(n == s for j, s in supers.items() if j != i)
    }
    return {i: n for i, n in names.items() if i not in placeholders} or names


def _parse_bbox(value: Any, width: int, height: int) -> tuple[list[float] | None, str]:
    """COCO ``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``, or None and why not."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None, f"bbox {value!r} is not [x, y, w, h]"
    x, y, w, h = value
    # type() rather than isinstance(): true/false are not coordinates
    if not (type(x) in _NUMBER and type(y) in _NUMBER and type(w) in _NUMBER and type(h) in _NUMBER):
        return None, f"bbox {list(value)!r} has non-numbers"
    if not math.isfinite(x + y + w + h):
        return None, f"bbox {list(value)!r} is not finite"
    if w <= 0 or h <= 0:
        return None, f"bbox {list(value)!r} has non-positive size"
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return None, f"bbox {list(value)!r} lies outside the {width}x{height} image"
    return [x, y, x + w, y + h], ""


_NUMBER = (int, float)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if value > 0 and int(value) == value else None
