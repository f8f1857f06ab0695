"""GeoJSON (RFC 7946) output: one Polygon feature per detection.

Top-level members besides ``type`` and ``features``:

* ``"sspnet:coordinates"`` says what the geometries are in:

  - ``"wgs84"``: every input was a georeferenced raster; each box's four corners are transformed
    from the raster's CRS to WGS84 lon/lat (a rotated raster gives the true quadrilateral).
  - ``"pixel"``: no input was georeferenced; geometries are in pixel coordinates of their image
    (x = column, y = row, growing downwards). Not map positions: a GIS will misplace them.
  - ``"mixed"``: some inputs were georeferenced, some not. Features of georeferenced rasters get
    lon/lat geometry; the others get ``"geometry": null`` (an "unlocated" feature, RFC 7946 3.2),
    so a GIS draws only true positions and still lists every detection with its ``pixel_bbox``.

* ``"sspnet:run"``: the run metadata the caller passes in (model, options), keys sorted.

Every ring is closed and counter-clockwise (in the plane of its numbers, x right, y up).
Properties of each feature: ``image``, ``score``, ``label``, ``pixel_bbox`` [x1, y1, x2, y2],
``position_source`` (``"raster"`` or ``"pixel"``), and ``camera`` (lon, lat, altitude and the
drone's attitude when known) for photos with EXIF GPS. One feature per line, in input order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from sspnet_cli.geo.transform import box_rings_lonlat, pixel_box_rings
from sspnet_cli.outputs.atomic import atomic_write
from sspnet_cli.outputs.values import (
    LONLAT_DECIMALS,
    PIXEL_DECIMALS,
    SCORE_DECIMALS,
    camera_position,
    detection_arrays,
    label_name,
    plain_json,
    rounded,
)
from sspnet_cli.types import ImageResult


def coordinates_kind(results: Sequence[ImageResult]) -> str:
    """``"wgs84"``, ``"pixel"`` or ``"mixed"`` (see the module documentation); an empty run is
    ``"pixel"``."""
    geo = [r.georef is not None for r in results]
    if geo and all(geo):
        return "wgs84"
    return "mixed" if any(geo) else "pixel"


def _ring_json(ring: np.ndarray, decimals: int) -> list[list[Optional[float]]]:
    return [[rounded(x, decimals), rounded(y, decimals)] for x, y in ring]


def _features(result: ImageResult, kind: str) -> Iterator[dict[str, Any]]:
    boxes, scores, labels = detection_arrays(result)
    if len(boxes) == 0:
        return
    if result.georef is not None:
        rings: Optional[np.ndarray] = box_rings_lonlat(result.georef, boxes)
        decimals, source = LONLAT_DECIMALS, "raster"
    else:
        rings = pixel_box_rings(boxes) if kind == "pixel" else None
        decimals, source = PIXEL_DECIMALS, "pixel"
    camera = camera_position(result.camera)
    for i in range(len(boxes)):
        geometry = None
        if rings is not None:
            geometry = {"type": "Polygon", "coordinates": [_ring_json(rings[i], decimals)]}
        properties: dict[str, Any] = {
            "image": result.image,
            "score": rounded(scores[i], SCORE_DECIMALS),
            "label": label_name(labels[i]),
            "pixel_bbox": [rounded(v, PIXEL_DECIMALS) for v in boxes[i]],
            "position_source": source,
        }
        if camera is not None:
            properties["camera"] = camera
        yield {"type": "Feature", "geometry": geometry, "properties": properties}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def write_geojson(path: Union[str, Path], results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> None:
    """Write ``results`` as a GeoJSON FeatureCollection at ``path`` (atomically)."""
    kind = coordinates_kind(results)
    with atomic_write(path, "w", newline="\n") as f:
        f.write('{"type": "FeatureCollection",\n')
        f.write(f'"sspnet:coordinates": {_dumps(kind)},\n')
        f.write(f'"sspnet:run": {_dumps(plain_json(meta or {}))},\n')
        f.write('"features": [')
        first = True
        for result in results:
            for feature in _features(result, kind):
                f.write("\n" if first else ",\n")
                f.write(_dumps(feature))
                first = False
        f.write("\n]}\n")
