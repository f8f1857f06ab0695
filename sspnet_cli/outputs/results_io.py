"""Reading a ``detect`` output (``.json``, ``.geojson`` or ``.csv``) back into :class:`ImageResult`.

What each format keeps, and so what comes back:

* ``.json`` (COCO-style): every image with its width and height, detections or not, and the run
  metadata (``info["sspnet:run"]``). No map positions.
* ``.geojson``: only images with detections (no sizes: width and height are 0, "unknown"), the run
  metadata (``"sspnet:run"``) and, for features with a ``Polygon`` geometry in WGS84, each
  detection's lon/lat ring, from which its centre is the mean of the four corners.
* ``.csv``: only images with detections, no sizes, no metadata; ``lon,lat`` of box centres where
  the columns are filled.

Map positions read from a file go into ``result.ground`` as a
:class:`~sspnet_cli.geo.positions.Positions`, so :func:`~sspnet_cli.geo.positions.positions_of`
answers for them as it does for positions computed from a raster (an image with positions for
only some of its detections gets none). Images keep the order of their first appearance; a
detection's label is 1 for ``person`` and N for ``class_N``.

Malformed files raise :class:`InputError`; a bad record is left out with a warning.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from sspnet_cli.errors import InputError
from sspnet_cli.geo.positions import Positions
from sspnet_cli.outputs.values import LABEL_NAMES
from sspnet_cli.types import Detections, ImageResult

PathLike = Union[str, Path]
READ_SUFFIXES = (".json", ".geojson", ".csv", ".gpx", ".kml")
# bad records named one by one before the rest are counted in one line
_MAX_RECORD_WARNINGS = 5


@dataclass
class ReadResults:
    """What :func:`read_results` found: the results, the run metadata (empty when the format
    has none) and one warning line per problem (records left out)."""

    results: list[ImageResult]
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, problem) where known
    from_parts: bool = False  # read from the part folder of an unfinished run


@dataclass
class _Image:
    name: str
    width: int = 0
    height: int = 0
    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    rings: list[Optional[np.ndarray]] = field(default_factory=list)
    centres: list[Optional[tuple[float, float]]] = field(default_factory=list)


class _Collector:
    """Images by name in order of appearance, and the warnings about bad records."""

    def __init__(self, path: PathLike) -> None:
        self.path = path
        self.images: dict[str, _Image] = {}
        self.warnings: list[str] = []
        self.bad = 0

    def image(self, name: str) -> _Image:
        if name not in self.images:
            self.images[name] = _Image(name)
        return self.images[name]

    def reject(self, what: str, problem: str) -> None:
        self.bad += 1
        if self.bad <= _MAX_RECORD_WARNINGS:
            self.warnings.append(f"{self.path}: {what}: {problem}; left out")

    def finish(self, meta: dict[str, Any]) -> ReadResults:
        if self.bad > _MAX_RECORD_WARNINGS:
            self.warnings.append(f"{self.path}: {self.bad - _MAX_RECORD_WARNINGS} more malformed record(s) left out")
        return ReadResults([_to_result(im) for im in self.images.values()], meta, self.warnings)


def _to_result(im: _Image) -> ImageResult:
    n = len(im.scores)
    detections = Detections(
        torch.tensor(im.boxes, dtype=torch.float32).reshape(n, 4),
        torch.tensor(im.scores, dtype=torch.float32).reshape(n),
        torch.tensor(im.labels, dtype=torch.int64).reshape(n),
    )
    result = ImageResult(im.name, im.width, im.height, detections)
    if n and all(c is not None for c in im.centres):
        rings = np.stack(im.rings) if all(r is not None for r in im.rings) else None  # type: ignore[arg-type]
        result.ground = Positions("raster", rings=rings, centres=np.array(im.centres, dtype=np.float64))
    return result


def read_results(path: PathLike) -> ReadResults:
    """Read a ``detect`` output; the format follows the suffix (case-insensitive)."""
    suffix = Path(path).suffix.lower()
    readers = {".json": _read_coco, ".geojson": _read_geojson, ".csv": _read_csv, ".gpx": _read_waypoints, ".kml": _read_waypoints}
    if suffix not in readers:
        raise InputError(path, f"unknown results format {suffix or '(no suffix)'!r}; use one of {', '.join(READ_SUFFIXES)}")
    if not Path(path).is_file():
        raise InputError(path, "no such file" if not Path(path).exists() else "is not a file")
    return readers[suffix](path)


def _load_json(path: PathLike) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"is not valid JSON ({exc})") from None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        v = float(value)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _box_problem(box: Optional[list[Optional[float]]]) -> Optional[str]:
    if box is None or len(box) != 4 or any(v is None for v in box):
        return "needs four finite box numbers"
    if box[2] < box[0] or box[3] < box[1]:  # type: ignore[operator]
        return "box has negative size"
    return None


def _label(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        by_name = {v: k for k, v in LABEL_NAMES.items()}
        if value in by_name:
            return by_name[value]
        if value.startswith("class_") and value[6:].isdigit():
            return int(value[6:])
    return None


def _meta(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


# -- COCO JSON ---------------------------------------------------------------------------


def _read_coco(path: PathLike) -> ReadResults:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise InputError(path, "is not an sspnet detections file (an object with 'images' and 'annotations' lists)")
    out = _Collector(path)
    by_id: dict[Any, _Image] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str) or "id" not in im:
            out.reject(f"image #{i}", "needs an 'id' and a 'file_name'")
            continue
        try:
            hash(im["id"])
        except TypeError:
            out.reject(f"image #{i}", "has an unusable id")
            continue
        image = out.image(im["file_name"])
        w, h = _number(im.get("width")), _number(im.get("height"))
        image.width, image.height = (int(w), int(h)) if w and h and w > 0 and h > 0 else (0, 0)
        by_id[im["id"]] = image
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            out.reject(f"detection #{i}", "must be an object")
            continue
        bbox = ann.get("bbox")
        nums = [_number(v) for v in bbox] if isinstance(bbox, list) else None
        box = None
        if nums is not None and len(nums) == 4 and None not in nums:
            x, y, w, h = nums  # type: ignore[misc]
            box = [x, y, x + w, y + h]
        score = _number(ann.get("score"))
        label = _label(ann.get("category_id", 1))
        try:
            image = by_id.get(ann.get("image_id"))
        except TypeError:
            image = None
        problem = _box_problem(box) or (None if score is not None else "needs a numeric 'score'")
        problem = problem or (None if label is not None else "has an unusable 'category_id'")
        problem = problem or (None if image is not None else f"refers to an unknown image_id {ann.get('image_id')!r}")
        if problem:
            out.reject(f"detection #{i}", problem)
            continue
        image.boxes.append(box)  # type: ignore[union-attr,arg-type]
        image.scores.append(score)  # type: ignore[union-attr,arg-type]
        image.labels.append(label)  # type: ignore[union-attr,arg-type]
        image.rings.append(None)  # type: ignore[union-attr]
        image.centres.append(None)  # type: ignore[union-attr]
    info = data.get("info")
    return out.finish(_meta(info.get("sspnet:run")) if isinstance(info, dict) else {})


# -- GeoJSON -----------------------------------------------------------------------------


def _ring(geometry: Any, kind: str) -> Optional[np.ndarray]:
    """The closed 5-point lon/lat ring of a detection's Polygon in WGS84, or None."""
    if kind == "pixel" or not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        return None
    coords = geometry.get("coordinates")
    if not isinstance(coords, list) or not coords or not isinstance(coords[0], list) or len(coords[0]) != 5:
        return None
    try:
        ring = np.array([[float(p[0]), float(p[1])] for p in coords[0]], dtype=np.float64)
    except (TypeError, ValueError, IndexError):
        return None
    return ring if np.isfinite(ring).all() else None


def _read_geojson(path: PathLike) -> ReadResults:
    data = _load_json(path)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise InputError(path, "is not a GeoJSON FeatureCollection")
    kind = data.get("sspnet:coordinates", "wgs84")
    out = _Collector(path)
    for i, feature in enumerate(data["features"]):
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            out.reject(f"feature #{i}", "has no properties")
            continue
        bbox = props.get("pixel_bbox")
        box = [_number(v) for v in bbox] if isinstance(bbox, list) else None
        score = _number(props.get("score"))
        label = _label(props.get("label", "person"))
        name = props.get("image")
        problem = _record_problem(name, box, score, label)
        if problem:
            out.reject(f"feature #{i}", problem)
            continue
        image = out.image(name)  # type: ignore[arg-type]
        ring = _ring(feature.get("geometry"), kind)
        image.boxes.append(box)  # type: ignore[arg-type]
        image.scores.append(score)  # type: ignore[arg-type]
        image.labels.append(label)  # type: ignore[arg-type]
        image.rings.append(ring)
        image.centres.append(None if ring is None else tuple(ring[:4].mean(axis=0)))  # type: ignore[arg-type]
    return out.finish(_meta(data.get("sspnet:run")))


def _record_problem(name: Any, box: Optional[list], score: Optional[float], label: Any) -> Optional[str]:
    """What makes one detection record unusable (GeoJSON feature or CSV row), or None."""
    if not (isinstance(name, str) and name):
        return "needs an 'image' name"
    return (_box_problem(box) or (None if score is not None else "needs a numeric 'score'")
            or (None if label is not None else "has an unusable 'label'"))


# -- CSV ---------------------------------------------------------------------------------


def _read_waypoints(path: PathLike) -> ReadResults:
    """A GPX or KML file of ours: every waypoint with its image and pixel box (extensions /
    ExtendedData); positions are the waypoints' own points. Frames without detections, and
    detections without a map position, are not in such a file."""
    from sspnet_cli.outputs.waypoints import read_waypoints

    try:
        points = read_waypoints(path)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(path, f"is not a GPX or KML file of sspnet ({type(exc).__name__})") from None
    out = _Collector(path)
    for i, p in enumerate(points):
        box = p.get("pixel_bbox")
        problem = _record_problem(p.get("image"), box, p.get("score"), _label(p.get("label", "person")))
        if problem:
            out.reject(f"waypoint #{i + 1}", problem)
            continue
        image = out.image(p["image"])
        image.boxes.append(box)
        image.scores.append(p["score"])
        image.labels.append(_label(p.get("label", "person")))  # type: ignore[arg-type]
        image.rings.append(None)
        image.centres.append((p["lon"], p["lat"]))
    return out.finish({})


def _read_csv(path: PathLike) -> ReadResults:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames
            rows = list(reader)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"is not a readable CSV file ({exc})") from None
    if fields is None or not {"image", "x1", "y1", "x2", "y2", "score"} <= set(fields):
        raise InputError(path, "is not an sspnet CSV (needs the columns image,x1,y1,x2,y2,score)")
    out = _Collector(path)
    for i, row in enumerate(rows, start=2):
        box = [_number(row.get(k)) for k in ("x1", "y1", "x2", "y2")]
        score = _number(row.get("score"))
        label = _label(row.get("label") or "person")
        name = row.get("image")
        problem = _record_problem(name, box, score, label)
        if problem:
            out.reject(f"line {i}", problem)
            continue
        image = out.image(name)  # type: ignore[arg-type]
        lon, lat = _number(row.get("lon")), _number(row.get("lat"))
        image.boxes.append(box)  # type: ignore[arg-type]
        image.scores.append(score)  # type: ignore[arg-type]
        image.labels.append(label)  # type: ignore[arg-type]
        image.rings.append(None)
        image.centres.append(None if lon is None or lat is None else (lon, lat))
    return out.finish({})
