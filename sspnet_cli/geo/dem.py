"""Ground heights from a DEM raster, and where a ray from the camera meets them.

:class:`Dem` opens any GDAL raster with a CRS (a GeoTIFF as a rule) with rasterio and samples
band 1 bilinearly between cell centres, at WGS84 lon/lat. It reads blocks of
:data:`BLOCK` x :data:`BLOCK` cells on demand and keeps the :data:`CACHE_BLOCKS` most recently
used, so a national DEM costs no more memory than one of a field. Cells that are nodata (or
masked, or NaN) and points off the raster have no height (NaN).

Heights are taken as metres in the vertical datum of the camera's GPS altitude; a DEM whose CRS
says its heights are in another unit is refused.

:func:`intersect_surface` finds where rays meet a surface ``z = height(x, y)`` by iterating:
intersect the ray with the horizontal plane at the height found at the last point, look the
height up there, repeat. Over gentle terrain seen from above this settles in two or three steps.
Once the ray has been seen both above and below the surface, the crossing is bracketed and
false position (Illinois variant, bisection if a step would leave the bracket) takes over, so
terrain rising towards the view, where plain iteration would oscillate, converges fast too. The crossing
found is the one the iteration reaches: a ridge hiding the point from the camera is not checked.
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.transform import georef_problem, lonlat_to_pixel
from sspnet_cli.types import GeoRef

BLOCK = 256
CACHE_BLOCKS = 64

#: why a ray has no ground point (see :func:`intersect_surface`)
ABOVE_HORIZON = "at or above the horizon"
OFF_DEM = "outside the DEM"
NO_CONVERGENCE = "does not settle on the DEM (steep terrain at a grazing angle)"

_METRE_NAMES = {"metre", "meter", "m", "metres", "meters"}


class Dem:
    """A DEM raster (band 1 = heights in metres), sampled at lon/lat. Use as a context manager
    or call :meth:`close`. Raises :class:`SSPNetError` (one line) when the file cannot serve."""

    def __init__(self, path: Union[str, Path]) -> None:
        import rasterio

        self.path = Path(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._ds = rasterio.open(self.path)
        except Exception:
            problem = "no such file" if not self.path.exists() else "not a raster GDAL can read"
            raise SSPNetError(f"DEM {self.path}: {problem}") from None
        try:
            self.georef = self._check()
        except SSPNetError:
            self._ds.close()
            raise
        self.width, self.height = int(self._ds.width), int(self._ds.height)
        self._blocks: "OrderedDict[tuple[int, int], np.ndarray]" = OrderedDict()

    def _check(self) -> GeoRef:
        ds = self._ds
        if ds.count < 1 or ds.width < 1 or ds.height < 1:
            raise SSPNetError(f"DEM {self.path}: has no pixels")
        if ds.crs is None or ds.transform.is_identity:
            raise SSPNetError(f"DEM {self.path}: not georeferenced (needs a CRS and a pixel-to-map transform)")
        georef = GeoRef(ds.crs.to_wkt(), tuple(float(v) for v in tuple(ds.transform)[:6]))  # type: ignore[arg-type]
        problem = georef_problem(georef, ds.width, ds.height)
        if problem is not None:
            raise SSPNetError(f"DEM {self.path}: georeferencing not usable ({problem})")
        unit = _vertical_unit(ds)
        if unit is not None and unit.lower() not in _METRE_NAMES:
            raise SSPNetError(f"DEM {self.path}: heights are in {unit!r}; convert them to metres")
        return georef

    def heights(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Heights (metres) at WGS84 ``lon``, ``lat``: bilinear between cell centres, NaN off
        the raster or where a cell used is nodata."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        out = np.full(lon.shape, np.nan)
        ok = np.isfinite(lon) & np.isfinite(lat)
        if not ok.any():
            return out
        cols, rows = lonlat_to_pixel(self.georef, lon[ok], lat[ok])
        inside = np.isfinite(cols) & np.isfinite(rows) & (cols >= 0) & (cols <= self.width) & (rows >= 0) & (rows <= self.height)
        values = np.full(cols.shape, np.nan)
        if inside.any():
            values[inside] = self._bilinear(cols[inside] - 0.5, rows[inside] - 0.5)
        out[ok] = values
        return out

    def _bilinear(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        # within half a cell of the edge the outermost cells' values hold (fractions clip to 0/1)
        j0 = np.clip(np.floor(u), 0, self.width - 1).astype(np.int64)
        i0 = np.clip(np.floor(v), 0, self.height - 1).astype(np.int64)
        j1 = np.minimum(j0 + 1, self.width - 1)
        i1 = np.minimum(i0 + 1, self.height - 1)
        fu = np.clip(u - j0, 0.0, 1.0)
        fv = np.clip(v - i0, 0.0, 1.0)
        top = self._cells(i0, j0) * (1 - fu) + self._cells(i0, j1) * fu
        bottom = self._cells(i1, j0) * (1 - fu) + self._cells(i1, j1) * fu
        return top * (1 - fv) + bottom * fv

    def _cells(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = np.empty(rows.shape, dtype=np.float64)
        keys = (rows // BLOCK) * (self.width // BLOCK + 1) + cols // BLOCK
        for key in np.unique(keys):
            at = keys == key
            bi, bj = int(rows[at][0] // BLOCK), int(cols[at][0] // BLOCK)
            block = self._block(bi, bj)
            out[at] = block[rows[at] - bi * BLOCK, cols[at] - bj * BLOCK]
        return out

    def _block(self, bi: int, bj: int) -> np.ndarray:
        key = (bi, bj)
        block = self._blocks.get(key)
        if block is not None:
            self._blocks.move_to_end(key)
            return block
        from rasterio.windows import Window

        window = Window(bj * BLOCK, bi * BLOCK, min(BLOCK, self.width - bj * BLOCK), min(BLOCK, self.height - bi * BLOCK))
        try:
            data = self._ds.read(1, window=window, masked=True)
        except Exception as exc:
            raise SSPNetError(f"DEM {self.path}: reading failed ({type(exc).__name__})") from None
        block = np.ma.filled(data.astype(np.float64), np.nan)
        self._blocks[key] = block
        if len(self._blocks) > CACHE_BLOCKS:
            self._blocks.popitem(last=False)
        return block

    def close(self) -> None:
        """Close the raster; closing twice is harmless."""
        self._ds.close()
        self._blocks.clear()

    def __enter__(self) -> "Dem":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _vertical_unit(ds: Any) -> Optional[str]:
    """The unit of the DEM's heights where the file says (a compound CRS's vertical axis, else
    the band's unit), or None."""
    try:
        from pyproj import CRS

        crs = CRS.from_wkt(ds.crs.to_wkt())
        if crs.is_compound and len(crs.sub_crs_list) > 1:
            axes = crs.sub_crs_list[1].axis_info
            if axes:
                return str(axes[0].unit_name)
    except Exception:
        pass
    units = getattr(ds, "units", None)
    if units and units[0]:
        return str(units[0])
    return None


def horizon_distance(height: float) -> float:
    """Distance (m) to the horizon seen from ``height`` metres above a sphere of the Earth's mean
    radius: beyond it no ray meets the ground, however flat the model."""
    return math.sqrt(2.0 * 6_371_000.0 * max(height, 0.0))


def intersect_surface(
    height_at: Callable[[np.ndarray, np.ndarray], np.ndarray],
    z_camera: float,
    directions: np.ndarray,
    start_height: float,
    max_range: float,
    tolerance: float = 0.01,
    max_iterations: int = 60,
) -> tuple[np.ndarray, list[Optional[str]]]:
    """Where rays from ``(0, 0, z_camera)`` along ``directions`` ((N, 3) east, north, up; any
    length) first settle on the surface ``z = height_at(x, y)`` (NaN = no height there).

    Starts from the horizontal plane at ``start_height`` (the height under the camera) and
    iterates as the module docstring says, to ``tolerance`` metres of height. A ray that is still
    above the surface ``max_range`` metres away (horizontally) is above the horizon. Returns
    ``(xy, why)``: (N, 2) metres east/north of the camera (NaN where there is no point) and, per
    ray, None or one of :data:`ABOVE_HORIZON`, :data:`OFF_DEM`, :data:`NO_CONVERGENCE`.
    """
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    n = len(d)
    dz = d[:, 2]
    length = np.linalg.norm(d, axis=1)
    run = np.hypot(d[:, 0], d[:, 1])  # horizontal metres per unit of t
    why: list[Optional[str]] = [None] * n
    xy = np.full((n, 2), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_max = np.where(run > 0, max_range / run, np.inf)
        t = np.where(dz < 0, (z_camera - start_height) / -dz, np.nan)
    active = (dz < 0) & (t > 0)
    for i in np.flatnonzero(~active):
        why[i] = ABOVE_HORIZON
    # the bracket: the ray is above the surface at t = lo (the camera at first) and below at hi;
    # gap_lo, gap_hi: the ray's height over the surface there
    lo, gap_lo = np.zeros(n), np.full(n, z_camera - start_height)
    hi, gap_hi = np.full(n, np.inf), np.full(n, np.nan)
    side = np.zeros(n)  # which end moved last (+1 lo, -1 hi), for the Illinois rule
    for _ in range(max_iterations):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        ti = np.minimum(t[idx], t_max[idx])
        px, py = ti * d[idx, 0], ti * d[idx, 1]
        ground = np.asarray(height_at(px, py), dtype=np.float64).reshape(-1)
        gap = z_camera + ti * dz[idx] - ground  # > 0: the ray is above the surface at ti
        off = ~np.isfinite(ground)
        # within tolerance of the surface, or of both ends of a bracket that holds ti
        settled = ~off & ((np.abs(gap) < tolerance) | ((hi[idx] - lo[idx]) * length[idx] < tolerance))
        beyond = ~off & ~settled & (gap > 0) & (ti >= t_max[idx])
        for k in np.flatnonzero(off):
            why[idx[k]] = OFF_DEM
        for k in np.flatnonzero(beyond):
            why[idx[k]] = ABOVE_HORIZON
        xy[idx[settled], 0], xy[idx[settled], 1] = px[settled], py[settled]
        stop = off | settled | beyond
        active[idx[stop]] = False
        idx, ti, gap, ground = idx[~stop], ti[~stop], gap[~stop], ground[~stop]
        above = gap > 0
        # Illinois: an end kept twice in a row has its gap halved, so false position keeps
        # shrinking the bracket from both sides
        gap_hi[idx] = np.where(above & (side[idx] > 0), gap_hi[idx] / 2, gap_hi[idx])
        gap_lo[idx] = np.where(~above & (side[idx] < 0), gap_lo[idx] / 2, gap_lo[idx])
        lo[idx], gap_lo[idx] = np.where(above, ti, lo[idx]), np.where(above, gap, gap_lo[idx])
        hi[idx], gap_hi[idx] = np.where(above, hi[idx], ti), np.where(above, gap_hi[idx], gap)
        side[idx] = np.where(above, 1.0, -1.0)
        bracketed = np.isfinite(hi[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            # no bracket yet: the plane at the height just found; else false position
            plane = (z_camera - ground) / -dz[idx]
            false_position = (lo[idx] * gap_hi[idx] - hi[idx] * gap_lo[idx]) / (gap_hi[idx] - gap_lo[idx])
        inside = (false_position > lo[idx]) & (false_position < hi[idx])
        t[idx] = np.where(~bracketed, plane, np.where(inside, false_position, (lo[idx] + hi[idx]) / 2))
    for i in np.flatnonzero(active):
        why[i] = NO_CONVERGENCE
    return xy, why
