"""Pixel <-> map <-> WGS84 conversions, vectorised over many points or boxes.

Pixel coordinates follow GDAL's corner convention (see :mod:`sspnet_cli.types`): ``(col, row)``
with ``(0, 0)`` the top-left corner of the top-left pixel, so the raster's affine transform maps
them to map coordinates directly. Lon/lat are WGS84 degrees in (lon, lat) order, as GeoJSON wants.

Boxes crossing the antimeridian are not split: a detection is a few metres wide, so this only
matters for a raster straddling 180 degrees, where the ring's longitudes may jump by 360.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Optional

import numpy as np
from pyproj import CRS, Transformer

from sspnet_cli.errors import SSPNetError
from sspnet_cli.imagery.exif import read_exif
from sspnet_cli.types import GeoRef

if TYPE_CHECKING:
    from sspnet_cli.imagery.sources import ImageSource

_WGS84 = "EPSG:4326"


def _as_float_arrays(*arrays: object) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def pixel_to_map(georef: GeoRef, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (in the raster's CRS) of pixel corners ``(cols, rows)``."""
    a, b, c, d, e, f = georef.transform
    cols, rows = _as_float_arrays(cols, rows)
    return a * cols + b * rows + c, d * cols + e * rows + f


def map_to_pixel(georef: GeoRef, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ``(cols, rows)`` of map coordinates: the inverse of :func:`pixel_to_map`."""
    a, b, c, d, e, f = georef.transform
    det = a * e - b * d
    if det == 0:
        raise SSPNetError("the raster's affine transform is singular (no pixel -> map inverse)")
    xs, ys = _as_float_arrays(xs, ys)
    dx, dy = xs - c, ys - f
    return (e * dx - b * dy) / det, (-d * dx + a * dy) / det


@lru_cache(maxsize=32)
def _horizontal_crs(crs_wkt: str) -> CRS:
    try:
        crs = CRS.from_wkt(crs_wkt)
    except Exception as exc:  # pyproj's CRSError carries a long PROJ message
        raise SSPNetError(f"cannot understand the raster's CRS ({type(exc).__name__})") from None
    # A compound CRS (e.g. UTM + a vertical datum) would make the transformer expect heights.
    if crs.is_compound and crs.sub_crs_list:
        crs = crs.sub_crs_list[0]
    return crs


@lru_cache(maxsize=32)
def _transformer(crs_wkt: str, inverse: bool) -> Transformer:
    """Cached CRS -> WGS84 (or WGS84 -> CRS) transformer, lon/lat in x/y order."""
    crs = _horizontal_crs(crs_wkt)
    if inverse:
        return Transformer.from_crs(_WGS84, crs, always_xy=True)
    return Transformer.from_crs(crs, _WGS84, always_xy=True)


def map_to_lonlat(crs_wkt: str, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 ``(lons, lats)`` of map coordinates in the CRS given as WKT."""
    xs, ys = _as_float_arrays(xs, ys)
    lon, lat = _transformer(crs_wkt, False).transform(xs, ys)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def lonlat_to_map(crs_wkt: str, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates in the CRS given as WKT of WGS84 ``(lons, lats)``."""
    lons, lats = _as_float_arrays(lons, lats)
    x, y = _transformer(crs_wkt, True).transform(lons, lats)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def pixel_to_lonlat(georef: GeoRef, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 ``(lons, lats)`` of pixel corners ``(cols, rows)`` of a georeferenced raster."""
    return map_to_lonlat(georef.crs_wkt, *pixel_to_map(georef, cols, rows))


def lonlat_to_pixel(georef: GeoRef, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ``(cols, rows)`` of WGS84 ``(lons, lats)``: the inverse of :func:`pixel_to_lonlat`."""
    return map_to_pixel(georef, *lonlat_to_map(georef.crs_wkt, lons, lats))


def georef_problem(georef: GeoRef, width: int, height: int) -> Optional[str]:
    """Why ``georef`` cannot place a ``width`` x ``height`` raster in WGS84 (a CRS PROJ does not
    understand, a local engineering CRS, a singular transform), or None when it can: the frame's
    corners and centre must all transform to finite lon/lat in range."""
    try:
        cols = np.array([0.0, width, 0.0, width, width / 2])
        rows = np.array([0.0, 0.0, height, height, height / 2])
        map_to_pixel(georef, 0.0, 0.0)
        lon, lat = pixel_to_lonlat(georef, cols, rows)
    except SSPNetError as exc:
        return str(exc)
    except Exception as exc:  # PROJ errors
        return f"its CRS cannot be converted to WGS84 ({type(exc).__name__})"
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        return "its CRS cannot be converted to WGS84"
    if (np.abs(lat) > 90).any() or (np.abs(lon) > 360).any():
        return "its corners fall outside the Earth in WGS84"
    return None


def box_ground_sizes(georef: GeoRef, boxes: np.ndarray) -> np.ndarray:
    """``(N, 2)`` ground lengths in metres of ``(N, 4)`` pixel boxes of a georeferenced raster,
    along the box's width and height (geodesic distances on WGS84 between its corners)."""
    from pyproj import Geod

    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros((0, 2))
    cols = np.concatenate([b[:, 0], b[:, 2], b[:, 0]])
    rows = np.concatenate([b[:, 1], b[:, 1], b[:, 3]])
    lon, lat = pixel_to_lonlat(georef, cols, rows)
    n = len(b)
    geod = Geod(ellps="WGS84")
    _, _, width = geod.inv(lon[:n], lat[:n], lon[n : 2 * n], lat[n : 2 * n])
    _, _, height = geod.inv(lon[:n], lat[:n], lon[2 * n :], lat[2 * n :])
    return np.stack([np.abs(width), np.abs(height)], axis=1)


def check_source_georef(source: "ImageSource") -> "ImageSource":
    """``source`` with its georeferencing dropped (and a warning added) when it cannot place the
    raster in WGS84 (:func:`georef_problem`); a raster left without one then gets its EXIF
    camera metadata, as an ungeoreferenced file does. Returns ``source``."""
    if source.georef is None:
        return source
    problem = georef_problem(source.georef, source.width, source.height)
    if problem is not None:
        source.warnings.append(f"georeferencing not usable ({problem}): positions are given in pixels")
        source.georef = None
        if source.camera is None:
            source.camera, source.orientation = read_exif(source.path)
    return source


def box_rings(boxes: np.ndarray) -> np.ndarray:
    """Closed rings of ``(N, 4)`` ``x1, y1, x2, y2`` boxes: ``(N, 5, 2)``, corners in the order
    (x1, y1), (x1, y2), (x2, y2), (x2, y1), (x1, y1)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    xs = np.stack([x1, x1, x2, x2, x1], axis=1)
    ys = np.stack([y1, y2, y2, y1, y1], axis=1)
    return np.stack([xs, ys], axis=2)


def signed_area(rings: np.ndarray) -> np.ndarray:
    """Shoelace signed area of closed ``(N, K, 2)`` rings: positive when counter-clockwise in an
    x-right, y-up plane."""
    # relative to the first vertex: lon/lat of a box are close together, and products of the
    # raw values (~1e2) would cancel away a tiny box's area (~1e-14 deg^2)
    x = rings[..., 0] - rings[..., :1, 0]
    y = rings[..., 1] - rings[..., :1, 1]
    return 0.5 * np.sum(x[:, :-1] * y[:, 1:] - x[:, 1:] * y[:, :-1], axis=1)


def make_ccw(rings: np.ndarray) -> np.ndarray:
    """The rings, each reversed where it runs clockwise (RFC 7946 wants exterior rings CCW).
    Degenerate (zero-area) rings are left as they are."""
    rings = np.array(rings, dtype=np.float64, copy=True)
    cw = signed_area(rings) < 0
    rings[cw] = rings[cw, ::-1]
    return rings


def pixel_box_rings(boxes: np.ndarray) -> np.ndarray:
    """Closed counter-clockwise rings of pixel boxes in pixel coordinates, ``(N, 5, 2)``.

    "Counter-clockwise" is taken in the plane of the numbers as written (x right, y up), as a GIS
    reading the coordinates would: on the image itself (rows going down) it looks clockwise.
    """
    return make_ccw(box_rings(boxes))


def box_rings_lonlat(georef: GeoRef, boxes: np.ndarray) -> np.ndarray:
    """Closed counter-clockwise WGS84 rings of pixel boxes, ``(N, 5, 2)`` as (lon, lat).

    Each corner is transformed on its own, so a rotated or skewed raster gives the true
    quadrilateral, not the lon/lat bounding box of it.
    """
    rings = box_rings(boxes)
    lon, lat = pixel_to_lonlat(georef, rings[..., 0], rings[..., 1])
    return make_ccw(np.stack([lon, lat], axis=-1))


def box_centers_lonlat(georef: GeoRef, boxes: np.ndarray) -> np.ndarray:
    """WGS84 (lon, lat) of the centres of pixel boxes, ``(N, 2)``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lon, lat = pixel_to_lonlat(georef, (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)
    return np.stack([lon, lat], axis=-1)
