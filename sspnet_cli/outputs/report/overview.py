"""The overview map of a georeferenced run, drawn by the report itself as inline SVG.

Frame footprints (lon/lat quadrilaterals) and detection positions are projected with a local
equirectangular projection around the middle of everything drawn (x = east metres, y = north
metres; good to a fraction of a percent over the few kilometres a flight covers) and scaled to
fit the drawing, north up, with a scale bar. No map tiles, nothing fetched. Footprints link to
their image's overlay; detection dots link to their entry in the review list. Positions that
straddle the antimeridian are not unwrapped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Optional, Sequence

import numpy as np

from sspnet_cli.geo.transform import pixel_to_lonlat
from sspnet_cli.types import ImageResult

EARTH_RADIUS_M = 6_371_008.8
WIDTH_PX = 960
MIN_HEIGHT_PX = 240
MAX_HEIGHT_PX = 720
MARGIN_PX = 24
#: smallest extent drawn, in metres (a single detection still gets a sensible scale)
MIN_EXTENT_M = 40.0
#: frames and detections further apart than this are drawn on separate maps (see group_sites)
SITE_GAP_M = 5_000.0


@dataclass
class Footprint:
    """A frame's outline on the ground: closed lon/lat ring, link to its overlay, label."""

    ring: np.ndarray  # (K, 2) lon/lat
    href: Optional[str]
    label: str


@dataclass
class MapPoint:
    """A detection's position: lon/lat, its score (colour), link and label."""

    lon: float
    lat: float
    score: float
    href: str
    label: str


def raster_footprint(result: ImageResult) -> Optional[np.ndarray]:
    """The closed lon/lat ring of a frame on the ground: a georeferenced raster's (corners
    transformed one by one, so a rotated raster gives its true outline) or a drone photo's as its
    camera model casts it; None without either, or without a size."""
    ground = result.ground
    if result.georef is None and ground is not None and ground.footprint is not None:
        return np.asarray(ground.footprint, dtype=np.float64)
    if result.georef is None or result.width <= 0 or result.height <= 0:
        return None
    cols = np.array([0, result.width, result.width, 0, 0], dtype=np.float64)
    rows = np.array([0, 0, result.height, result.height, 0], dtype=np.float64)
    lon, lat = pixel_to_lonlat(result.georef, cols, rows)
    ring = np.stack([lon, lat], axis=1)
    return ring if np.isfinite(ring).all() else None


def score_class(score: float) -> str:
    """CSS class of a score's colour band (shared by dots and the legend)."""
    if score >= 0.9:
        return "s90"
    if score >= 0.7:
        return "s70"
    if score >= 0.5:
        return "s50"
    return "s00"


def _nice_length(max_m: float) -> float:
    """The largest 1, 2 or 5 x 10^k metres not above ``max_m``."""
    power = 10.0 ** math.floor(math.log10(max_m))
    for step in (5.0, 2.0, 1.0):
        if step * power <= max_m:
            return step * power
    return power


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def group_sites(footprints: Sequence[Footprint], points: Sequence[MapPoint], gap_m: float = SITE_GAP_M) -> list[tuple[list[Footprint], list[MapPoint]]]:
    """Split what the map draws into sites: footprints and points closer than ``gap_m`` to one
    another (chained) are one site. Frames from two places far apart would otherwise shrink to
    dots on one map. Sites come in the order of their first item (footprints first)."""
    centres = [fp.ring[:-1].mean(axis=0) if len(fp.ring) > 1 else fp.ring[0] for fp in footprints]
    centres += [np.array([p.lon, p.lat]) for p in points]
    n = len(centres)
    if n == 0:
        return []
    ll = np.radians(np.array(centres, dtype=np.float64))
    radius = [0.0] * len(footprints) + [0.0] * len(points)
    for k, fp in enumerate(footprints):  # a frame reaches as far as its own outline
        radius[k] = float(_distances_m(np.radians(fp.ring), ll[k]).max()) if len(fp.ring) > 1 else 0.0
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rad = np.array(radius)
    for i in range(n):
        near = np.nonzero(_distances_m(ll[i + 1:], ll[i]) - rad[i + 1:] - rad[i] < gap_m)[0] + i + 1
        for j in near:
            parent[find(int(j))] = find(i)
    sites: dict[int, tuple[list[Footprint], list[MapPoint]]] = {}
    for k in range(n):
        site = sites.setdefault(find(k), ([], []))
        if k < len(footprints):
            site[0].append(footprints[k])
        else:
            site[1].append(points[k - len(footprints)])
    return list(sites.values())


def _distances_m(lonlat_rad: np.ndarray, origin_rad: np.ndarray) -> np.ndarray:
    """Great-circle distances (haversine, spherical Earth) from ``origin`` to each row."""
    lonlat_rad = np.asarray(lonlat_rad).reshape(-1, 2)
    dlon = lonlat_rad[:, 0] - origin_rad[0]
    dlat = lonlat_rad[:, 1] - origin_rad[1]
    a = np.sin(dlat / 2) ** 2 + np.cos(origin_rad[1]) * np.cos(lonlat_rad[:, 1]) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def band_rings(bands: Sequence[dict]) -> list[tuple[str, float, list[np.ndarray]]]:
    """``(name, area_ha, rings)`` of the coverage's POD bands (GeoJSON geometries, lon/lat)."""
    out = []
    for band in bands:
        geom = band["geometry"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        out.append((band["name"], float(band["area_ha"]), [np.asarray(r, dtype=np.float64) for poly in polygons for r in poly]))
    return out


def overview_svg(
    footprints: Sequence[Footprint], points: Sequence[MapPoint], bands: Sequence[tuple[str, float, list[np.ndarray]]] = ()
) -> Optional[str]:
    """An ``<svg>`` element drawing ``footprints`` and ``points`` (over the POD ``bands`` of a
    coverage, where given), or None when there is nothing with a position to draw."""
    lonlat = [fp.ring for fp in footprints] + [np.array([[p.lon, p.lat]]) for p in points]
    if not lonlat:
        return None
    every = np.concatenate(lonlat, axis=0)
    lon0, lat0 = (every.min(axis=0) + every.max(axis=0)) / 2
    k_lon = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    k_lat = math.radians(1.0) * EARTH_RADIUS_M

    def metres(ll: np.ndarray) -> np.ndarray:
        return np.stack([(ll[:, 0] - lon0) * k_lon, (ll[:, 1] - lat0) * k_lat], axis=1)

    xy = metres(every)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre = (lo + hi) / 2
    extent = np.maximum(hi - lo, MIN_EXTENT_M)
    inner_w = WIDTH_PX - 2 * MARGIN_PX
    height = int(np.clip(inner_w * extent[1] / extent[0] + 2 * MARGIN_PX, MIN_HEIGHT_PX, MAX_HEIGHT_PX))
    inner_h = height - 2 * MARGIN_PX
    px_per_m = min(inner_w / extent[0], inner_h / extent[1])

    def to_px(ll: np.ndarray) -> np.ndarray:
        m = metres(ll) - centre
        return np.stack([WIDTH_PX / 2 + m[:, 0] * px_per_m, height / 2 - m[:, 1] * px_per_m], axis=1)

    parts = [
        f'<svg class="map" viewBox="0 0 {WIDTH_PX} {height}" width="{WIDTH_PX}" height="{height}" role="img" '
        f'aria-label="Map of frame footprints and detections">'
    ]
    if bands:
        # the probability-of-detection bands under everything: where to fly again
        parts.append('<g class="pod">')
        for name, area, rings in bands:
            d = " ".join("M" + " L".join(f"{_fmt(x)},{_fmt(y)}" for x, y in to_px(r)) + " Z" for r in rings)
            parts.append(f'<path class="pod-{escape(name)}" fill-rule="evenodd" d="{d}"><title>POD {escape(name)}: {area:.2f} ha</title></path>')
        parts.append("</g>")
    parts.append('<g class="footprints">')
    for fp in footprints:
        pts = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in to_px(fp.ring))
        shape = f'<polygon points="{pts}"><title>{escape(fp.label)}</title></polygon>'
        parts.append(f'<a href="{escape(fp.href)}">{shape}</a>' if fp.href else shape)
    parts.append("</g>")
    # lowest scores first so the best ones are drawn on top
    parts.append('<g class="points">')
    for p in sorted(points, key=lambda q: q.score):
        x, y = to_px(np.array([[p.lon, p.lat]]))[0]
        parts.append(
            f'<a href="{escape(p.href)}"><circle class="{score_class(p.score)}" cx="{_fmt(x)}" cy="{_fmt(y)}" r="5">'
            f"<title>{escape(p.label)}</title></circle></a>"
        )
    parts.append("</g>")
    bar_m = _nice_length(inner_w / px_per_m / 4)
    bar_px = bar_m * px_per_m
    label = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    y = height - MARGIN_PX / 2
    parts.append(
        f'<g class="scale"><line x1="{MARGIN_PX}" y1="{_fmt(y)}" x2="{_fmt(MARGIN_PX + bar_px)}" y2="{_fmt(y)}"/>'
        f'<text x="{_fmt(MARGIN_PX + bar_px + 6)}" y="{_fmt(y + 4)}">{escape(label)}</text></g>'
    )
    parts.append(f'<text class="north" x="{WIDTH_PX - MARGIN_PX}" y="{MARGIN_PX}" text-anchor="end">N &#8593;</text>')
    parts.append("</svg>")
    return "".join(parts)
