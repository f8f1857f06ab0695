"""Searched-area coverage and probability of detection (POD), from the model's own recall.

For every frame with a ground footprint (a georeferenced raster's bounds, or a drone photo's
camera-model footprint) the ground sample distance (GSD, metres per pixel: the footprint's area
over its pixels) says how many pixels a person covers there: a person seen from above is taken as
:data:`PERSON_M` = 0.5 m x 1.7 m (shoulders by height: a person lying down, or standing and seen
obliquely), so its size, as TinyPerson measures it, is sqrt(0.5 x 1.7) / GSD pixels. The model's
recall at that size (a table measured on the valid split, :func:`recall_at`) is the frame's POD.
Where frames overlap, the looks count as independent: POD = 1 - prod(1 - p). The union of the
pieces in each POD band (:data:`BANDS`) is one polygon, with its area in hectares computed in a
local metric projection (an azimuthal equidistant one centred on the search area), not in degrees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from sspnet_cli.geo.transform import pixel_to_lonlat
from sspnet_cli.types import ImageResult

#: metres: a person's footprint from above (shoulders x height)
PERSON_M = (0.5, 1.7)
#: POD bands: (lowest POD, name); a band runs up to the next one's lowest
BANDS = ((0.8, "high"), (0.5, "medium"), (0.0, "low"))


@dataclass
class FrameCoverage:
    """One frame's footprint (closed lon/lat ring), GSD, a person's size in its pixels and POD."""

    image: str
    ring: np.ndarray
    gsd_m: float
    person_px: float
    pod: float


@dataclass
class Coverage:
    """The frames' footprints and the POD bands over the searched area."""

    frames: list[FrameCoverage] = field(default_factory=list)
    bands: list[dict[str, Any]] = field(default_factory=list)  # name, min_pod, max_pod, area_ha, geometry (lon/lat, GeoJSON)
    without_footprint: list[str] = field(default_factory=list)
    total_area_ha: float = 0.0


def recall_at(person_px: float, table: Sequence[dict[str, float]]) -> float:
    """The recall of the size bin ``person_px`` falls in (``min_px`` <= size < ``max_px``); below
    the first bin 0, above the last the last bin's recall."""
    rows = sorted(table, key=lambda r: r["min_px"])
    if not rows or person_px < rows[0]["min_px"]:
        return 0.0
    for row in rows:
        if row["min_px"] <= person_px < row["max_px"]:
            return float(row["recall"])
    return float(rows[-1]["recall"])


def footprint(result: ImageResult) -> Optional[np.ndarray]:
    """The frame's outline on the ground, a closed (5, 2) lon/lat ring, or None."""
    if result.georef is not None and result.width > 0 and result.height > 0:
        cols = np.array([0.0, result.width, result.width, 0.0, 0.0])
        rows = np.array([0.0, 0.0, result.height, result.height, 0.0])
        lon, lat = pixel_to_lonlat(result.georef, cols, rows)
        return np.stack([lon, lat], axis=1)
    if result.ground is not None and result.ground.footprint is not None:
        ring = np.asarray(result.ground.footprint, dtype=np.float64)
        return ring if np.isfinite(ring).all() else None
    return None


def coverage(results: Sequence[ImageResult], recall_table: Sequence[dict[str, float]]) -> Coverage:
    """Footprints, POD per frame and POD bands of ``results`` (see the module docstring)."""
    import shapely
    from pyproj import Transformer
    from shapely.geometry import Polygon, mapping
    from shapely.ops import unary_union

    out = Coverage()
    rings = []
    for result in results:
        ring = footprint(result)
        if ring is None or result.width <= 0 or result.height <= 0:
            out.without_footprint.append(result.image)
            continue
        rings.append((result, ring))
    if not rings:
        return out
    lon0, lat0 = np.concatenate([r for _, r in rings]).mean(axis=0)
    local = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    forward = Transformer.from_crs("EPSG:4326", local, always_xy=True)
    backward = Transformer.from_crs(local, "EPSG:4326", always_xy=True)

    def to_m(geom: Any) -> Any:
        return shapely.transform(geom, lambda xy: np.column_stack(forward.transform(xy[:, 0], xy[:, 1])))

    def to_deg(geom: Any) -> Any:
        return shapely.transform(geom, lambda xy: np.column_stack(backward.transform(xy[:, 0], xy[:, 1])))

    pieces: list[tuple[Any, float]] = []
    for result, ring in rings:
        shape = to_m(Polygon(ring)).buffer(0)
        gsd = math.sqrt(shape.area / (result.width * result.height))
        person_px = math.sqrt(PERSON_M[0] * PERSON_M[1]) / gsd
        pod = recall_at(person_px, recall_table)
        out.frames.append(FrameCoverage(result.image, ring, gsd, person_px, pod))
        pieces = _add_look(pieces, shape, pod)
    for i, (low, name) in enumerate(BANDS):
        high = 1.0 if i == 0 else BANDS[i - 1][0]
        inside = [g for g, p in pieces if low <= p < high or (i == 0 and p >= low)]
        if not inside:
            continue
        union = unary_union(inside)
        out.bands.append({
            "name": name, "min_pod": low, "max_pod": high, "area_ha": union.area / 1e4,
            "geometry": mapping(to_deg(union)),
        })
    out.total_area_ha = unary_union([g for g, _ in pieces]).area / 1e4
    return out


def _add_look(pieces: list[tuple[Any, float]], shape: Any, pod: float) -> list[tuple[Any, float]]:
    """Overlay one more frame: where it overlaps a piece, the two looks combine as independent
    (1 - (1 - q)(1 - p)); elsewhere each keeps its own POD."""
    from shapely.ops import unary_union

    out = []
    for piece, q in pieces:
        both = piece.intersection(shape)
        if not both.is_empty and both.area > 0:
            out.append((both, 1 - (1 - q) * (1 - pod)))
        rest = piece.difference(shape)
        if not rest.is_empty and rest.area > 0:
            out.append((rest, q))
    covered = unary_union([p for p, _ in pieces]) if pieces else None
    new = shape if covered is None else shape.difference(covered)
    if not new.is_empty and new.area > 0:
        out.append((new, pod))
    return out
