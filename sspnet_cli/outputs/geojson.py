"""GeoJSON (RFC 7946) output: one feature per detection.

Where each detection is comes from :func:`sspnet_cli.geo.positions.positions_of`, per feature
``position_source``:

- ``"raster"``: the four corners of the box transformed from a georeferenced raster's CRS to
  WGS84 lon/lat (a rotated raster gives the true quadrilateral).
- ``"camera"``: the four corners cast to the ground by a drone photo's camera model
  (:mod:`sspnet_cli.geo.camera`); ``position_error_m`` estimates the horizontal error at the
  box's centre (null when a 1-degree attitude error could lift it above the horizon), and
  ``position_note`` gives a caveat when there is one (a cropped photo).
- ``"pixel"``: no map position; ``position_reason`` says why (not georeferenced, no GPS, no
  attitude, a box above the horizon...).

Top-level members besides ``type`` and ``features``:

* ``"sspnet:coordinates"`` says what the geometries are in:

  - ``"wgs84"``: every detection (and every input without one) has a map position, from a
    raster or a camera model alike; geometries are lon/lat Polygons.
  - ``"pixel"``: none has; every geometry is null (an "unlocated" feature, RFC 7946 3.2) and
    the box is in ``pixel_bbox``. Pixel coordinates are not lon/lat: written as geometries
    they would put people at "latitudes" above 90, which GIS tools reject or misplace. CSV and
    COCO JSON suit pixel work.
  - ``"mixed"``: some have, some not. Located features get lon/lat geometry; the others get
    ``"geometry": null`` too, so a GIS draws only true positions and still lists every
    detection with its ``pixel_bbox``.

* ``"sspnet:position_sources"``: how many features have each ``position_source`` (``raster``,
  ``camera``, ``pixel``), so a reader sees at once how much of the file is on the map.
* ``"sspnet:run"``: the run metadata the caller passes in (model, options), keys sorted.

Every ring is closed and counter-clockwise (in the plane of its numbers, x right, y up).
Properties of each feature: ``image``, ``score``, ``label``, ``pixel_bbox`` [x1, y1, x2, y2],
``position_source``, then ``position_error_m``, ``position_note`` and ``position_quality``
(``"oblique"``: the photo looked further from straight down than ``--max-off-nadir``) (camera) or
``position_reason`` (pixel), ``ground_size_m`` [w, h] where the ground sample distance is known
and ``size_plausible`` where the size filter judged it, and ``camera`` (lon, lat, altitude, the drone's attitude and the
model's focal length and height above ground, as known) for photos with EXIF GPS. One feature
per line, in input order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from sspnet_cli.atomic import atomic_write
from sspnet_cli.geo.positions import Positions, positions_of
from sspnet_cli.outputs.values import (
    ERROR_DECIMALS,
    LONLAT_DECIMALS,
    PIXEL_DECIMALS,
    SCORE_DECIMALS,
    camera_position,
    detection_arrays,
    label_name,
    plain_json,
    rounded,
    size_properties,
)
from sspnet_cli.types import ImageResult

POSITION_SOURCES = ("raster", "camera", "pixel")


def _located_flags(results: Sequence[ImageResult], positions: Sequence[Positions]) -> list[bool]:
    """Per detection whether it has a map position; an input without detections counts once,
    as whether it could have had them."""
    flags: list[bool] = []
    for result, pos in zip(results, positions):
        n = len(result.detections)
        flags.extend(pos.located(n).tolist() if n else [pos.source != "pixel"])
    return flags


def coordinates_kind(results: Sequence[ImageResult], positions: Optional[Sequence[Positions]] = None) -> str:
    """``"wgs84"``, ``"pixel"`` or ``"mixed"`` (see the module documentation); an empty run is
    ``"pixel"``. ``positions`` (of each result, from :func:`positions_of`) saves working them
    out again."""
    if positions is None:
        positions = [positions_of(r) for r in results]
    flags = _located_flags(results, positions)
    if flags and all(flags):
        return "wgs84"
    return "mixed" if any(flags) else "pixel"


def _ring_json(ring: np.ndarray, decimals: int) -> list[list[Optional[float]]]:
    return [[rounded(x, decimals), rounded(y, decimals)] for x, y in ring]


def _geometry(positions: Positions, i: int) -> dict[str, Any]:
    if positions.rings is not None:
        return {"type": "Polygon", "coordinates": [_ring_json(positions.rings[i], LONLAT_DECIMALS)]}
    lon, lat = positions.centres[i]  # type: ignore[index]
    return {"type": "Point", "coordinates": [rounded(lon, LONLAT_DECIMALS), rounded(lat, LONLAT_DECIMALS)]}


def _features(result: ImageResult, positions: Positions) -> Iterator[dict[str, Any]]:
    boxes, scores, labels = detection_arrays(result)
    if len(boxes) == 0:
        return
    located = positions.located(len(boxes))
    camera = camera_position(result.camera)
    for i in range(len(boxes)):
        geometry = _geometry(positions, i) if located[i] else None
        properties: dict[str, Any] = {
            "image": result.image,
            "score": rounded(scores[i], SCORE_DECIMALS),
            "label": label_name(labels[i]),
            "pixel_bbox": [rounded(v, PIXEL_DECIMALS) for v in boxes[i]],
            "position_source": positions.source if located[i] else "pixel",
        }
        if located[i]:
            if positions.error_m is not None:
                properties["position_error_m"] = rounded(positions.error_m[i], ERROR_DECIMALS)
            if positions.note:
                properties["position_note"] = positions.note
            if positions.quality:
                properties["position_quality"] = positions.quality
        else:
            properties["position_reason"] = positions.reason_for(i)
        properties.update(size_properties(positions, i))
        if camera is not None:
            properties["camera"] = camera
        yield {"type": "Feature", "geometry": geometry, "properties": properties}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _source_counts(results: Sequence[ImageResult], positions: Sequence[Positions]) -> dict[str, int]:
    counts = {source: 0 for source in POSITION_SOURCES}
    for result, pos in zip(results, positions):
        n = len(result.detections)
        located = int(pos.located(n).sum())
        if located:
            counts[pos.source] = counts.get(pos.source, 0) + located
        counts["pixel"] += n - located
    return counts


def write_geojson(path: Union[str, Path], results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> None:
    """Write ``results`` as a GeoJSON FeatureCollection at ``path`` (atomically)."""
    positions = [positions_of(r) for r in results]
    kind = coordinates_kind(results, positions)
    with atomic_write(path, "w", newline="\n") as f:
        f.write('{"type": "FeatureCollection",\n')
        f.write(f'"sspnet:coordinates": {_dumps(kind)},\n')
        f.write(f'"sspnet:position_sources": {_dumps(_source_counts(results, positions))},\n')
        f.write(f'"sspnet:run": {_dumps(plain_json(meta or {}))},\n')
        f.write('"features": [')
        first = True
        for result, pos in zip(results, positions):
            for feature in _features(result, pos):
                f.write("\n" if first else ",\n")
                f.write(_dumps(feature))
                first = False
        f.write("\n]}\n")
