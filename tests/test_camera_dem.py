"""DEM sampling and ray / terrain intersection for the camera model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from rasterio.transform import Affine

import sspnet_cli.geo.dem as dem_module
from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.camera import apply_camera_model, apply_camera_models, camera_model
from sspnet_cli.geo.dem import ABOVE_HORIZON, NO_CONVERGENCE, OFF_DEM, Dem, intersect_surface
from sspnet_cli.geo.positions import positions_of
from sspnet_cli.types import Detections, ImageResult

# UTM 32N around E 465000, N 5247000 (near Zurich); 5 m cells
E0, N0, CELL = 464000.0, 5248000.0, 5.0
TO_LONLAT = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
CAM_E, CAM_N = 465000.0, 5247000.0
CAM_LON, CAM_LAT = TO_LONLAT.transform(CAM_E, CAM_N)


def write_dem(path, heights: np.ndarray, nodata=None, crs="EPSG:32632", units=None):
    rows, cols = heights.shape
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                       crs=crs, transform=Affine(CELL, 0, E0, 0, -CELL, N0), nodata=nodata) as ds:
        ds.write(heights.astype(np.float32), 1)
        if units:
            ds.units = [units]
    return path


def plane(a: float, sx: float, sy: float, size: int = 400) -> np.ndarray:
    """Heights a + sx * (E - CAM_E) + sy * (N - CAM_N) at the cell centres."""
    e = E0 + CELL * (np.arange(size) + 0.5)
    n = N0 - CELL * (np.arange(size) + 0.5)
    return a + sx * (e[None, :] - CAM_E) + sy * (n[:, None] - CAM_N)


def meta(**changes) -> dict:
    camera = {"lon": CAM_LON, "lat": CAM_LAT, "altitude": 600.0, "relative_altitude": 80.0,
              "gimbal_yaw": 0.0, "gimbal_pitch": -90.0, "gimbal_roll": 0.0,
              "calibrated_focal_length": 1000.0, "calibrated_cx": 500.0, "calibrated_cy": 400.0}
    camera.update(changes)
    return camera


# -- intersect_surface with analytic surfaces ---------------------------------------------------


def test_flat_surface_is_met_in_one_step():
    d = np.array([[0.3, -0.2, -1.0], [0.0, 0.0, -1.0]])
    xy, why = intersect_surface(lambda x, y: np.full(x.shape, 10.0), 110.0, d, 10.0, 1e5)
    np.testing.assert_allclose(xy, [[30.0, -20.0], [0.0, 0.0]], atol=1e-9)
    assert why == [None, None]


@pytest.mark.parametrize("slope", [-3.0, -0.5, 0.4, 0.9, 2.5])
def test_tilted_plane_matches_the_exact_solution(slope):
    # z = 5 + slope * x; rays going east at 20..80 deg below the horizon, from 100 m
    angles = np.radians([20.0, 45.0, 80.0])
    d = np.stack([np.cos(angles), np.zeros(3), -np.sin(angles)], axis=1)
    xy, why = intersect_surface(lambda x, y: 5.0 + slope * x, 100.0, d, 5.0, 1e5, tolerance=1e-6)
    t = (100.0 - 5.0) / (slope * d[:, 0] - d[:, 2])  # 100 + t dz = 5 + slope t dx
    for k in range(3):
        if t[k] > 0:
            assert why[k] is None
            np.testing.assert_allclose(xy[k], [t[k] * d[k, 0], 0.0], atol=1e-4)


def test_rugged_terrain_converges_onto_the_surface():
    def hills(x, y):
        return 30 * np.sin(x / 15.0) * np.cos(y / 20.0)

    rng = np.random.default_rng(0)
    d = np.column_stack([rng.uniform(-0.8, 0.8, 200), rng.uniform(-0.8, 0.8, 200), -np.ones(200)])
    xy, why = intersect_surface(hills, 150.0, d, 0.0, 1e5, tolerance=1e-3)
    assert all(w is None for w in why)
    t = xy[:, 0] / d[:, 0]
    np.testing.assert_allclose(150.0 + t * d[:, 2], hills(xy[:, 0], xy[:, 1]), atol=2e-3)


def test_misses_say_why():
    d = np.array([[1.0, 0.0, 0.1], [1.0, 0.0, -0.01], [1.0, 0.0, -0.5]])
    surface = lambda x, y: np.where(x < 150.0, 0.0, np.nan)  # noqa: E731
    xy, why = intersect_surface(surface, 100.0, d, 0.0, 5000.0)
    assert why[0] == ABOVE_HORIZON  # looks up
    assert why[1] in (ABOVE_HORIZON, OFF_DEM)  # 10 km out on the plane, beyond both
    assert why[2] == OFF_DEM  # meets the plane at x = 200, past the DEM's edge
    assert np.isnan(xy).all()
    _, why = intersect_surface(lambda x, y: np.zeros_like(x), 100.0, d[1:2], 0.0, 5000.0)
    assert why == [ABOVE_HORIZON]  # the plane is 10 km out, the horizon 5 km
    _, why = intersect_surface(lambda x, y: np.zeros_like(x), 100.0, d[2:], 0.0, 5000.0, max_iterations=0)
    assert why == [NO_CONVERGENCE]


# -- the Dem class ------------------------------------------------------------------------------


def test_dem_samples_bilinearly_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(dem_module, "CACHE_BLOCKS", 2)
    heights = plane(400.0, 0.1, -0.05)
    with Dem(write_dem(tmp_path / "dem.tif", heights)) as dem:
        rng = np.random.default_rng(1)
        e = rng.uniform(E0 + 3 * CELL, E0 + 397 * CELL, 300)  # spans 2 x 2 blocks of 256 cells
        n = rng.uniform(N0 - 397 * CELL, N0 - 3 * CELL, 300)
        lon, lat = TO_LONLAT.transform(e, n)
        got = dem.heights(lon, lat)
        np.testing.assert_allclose(got, 400.0 + 0.1 * (e - CAM_E) - 0.05 * (n - CAM_N), atol=1e-3)
        assert len(dem._blocks) <= 2
        outside = dem.heights(*TO_LONLAT.transform(np.array([E0 - 10, E0 + 100]), np.array([N0 - 100, N0 + 10])))
        assert np.isnan(outside).all()


def test_dem_nodata_is_no_height(tmp_path):
    heights = plane(400.0, 0.0, 0.0, size=20)
    heights[5:8, 5:8] = -9999
    with Dem(write_dem(tmp_path / "dem.tif", heights, nodata=-9999)) as dem:
        lon, lat = TO_LONLAT.transform(np.array([E0 + 6.5 * CELL, E0 + 15 * CELL]), np.array([N0 - 6.5 * CELL, N0 - 15 * CELL]))
        got = dem.heights(lon, lat)
        assert np.isnan(got[0]) and got[1] == pytest.approx(400.0)


def test_unusable_dems_are_refused_in_one_line(tmp_path):
    with pytest.raises(SSPNetError, match="no such file"):
        Dem(tmp_path / "missing.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a raster")
    with pytest.raises(SSPNetError, match="not a raster"):
        Dem(tmp_path / "junk.tif")
    with pytest.raises(SSPNetError, match="not georeferenced"):
        Dem(write_dem(tmp_path / "nocrs.tif", plane(1.0, 0, 0, 10), crs=None))
    with pytest.raises(SSPNetError, match="'ft'"):
        Dem(write_dem(tmp_path / "feet.tif", plane(1.0, 0, 0, 10), units="ft"))


# -- the camera model over a DEM ---------------------------------------------------------------


def result_with(boxes, camera) -> ImageResult:
    det = Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.full((len(boxes),), 0.8), torch.ones(len(boxes), dtype=torch.int64))
    return ImageResult("dji.jpg", 1000, 800, det, None, camera)


def test_flat_dem_matches_the_ground_elevation(tmp_path):
    path = write_dem(tmp_path / "flat.tif", plane(512.5, 0.0, 0.0))
    boxes = [[100.0, 100.0, 120.0, 140.0], [700.0, 500.0, 712.0, 530.0]]
    camera = meta(gimbal_pitch=-60.0, gimbal_yaw=30.0)
    by_dem = positions_of(apply_camera_models([result_with(boxes, camera)], dem=path)[0])
    by_level = positions_of(apply_camera_model(result_with(boxes, camera), ground_elevation=512.5))
    assert by_dem.source == by_level.source == "camera"
    np.testing.assert_allclose(by_dem.rings, by_level.rings, atol=1e-9)
    np.testing.assert_allclose(by_dem.error_m, by_level.error_m, atol=1e-3)


def test_sloping_dem_moves_the_point_where_the_slope_says(tmp_path):
    # the ground rises 0.3 m per metre eastwards; the camera looks 30 deg east of nadir
    with Dem(write_dem(tmp_path / "slope.tif", plane(500.0, 0.3, 0.0))) as dem:
        model = camera_model(meta(gimbal_yaw=90.0, gimbal_pitch=-60.0), 1000, 800, dem=dem)
        assert model.height_above_ground == pytest.approx(100.0, abs=1e-3)
        xy, why = model.ground_xy(np.array([500.0]), np.array([400.0]))
    # 600 - t cos 30 = 500 + 0.3 t sin 30  ->  t = 100 / (cos 30 + 0.15)
    t = 100.0 / (math.cos(math.radians(30)) + 0.15)
    assert why == [None]
    np.testing.assert_allclose(xy[0], [t * 0.5, 0.0], atol=2e-2)


def test_camera_under_the_dem_surface_is_a_datum_problem(tmp_path):
    path = write_dem(tmp_path / "high.tif", plane(650.0, 0.0, 0.0))
    res = apply_camera_models([result_with([[1.0, 1.0, 2.0, 2.0]], meta())], dem=path)[0]
    pos = positions_of(res)
    assert pos.source == "pixel" and "vertical datum" in pos.reason


def test_camera_off_the_dem(tmp_path):
    path = write_dem(tmp_path / "small.tif", plane(500.0, 0.0, 0.0, size=10))
    res = apply_camera_models([result_with([[1.0, 1.0, 2.0, 2.0]], meta())], dem=path)[0]
    assert "not over the DEM" in positions_of(res).reason


def test_boxes_beyond_the_dem_keep_no_position(tmp_path):
    # 2 km of DEM to the north of the camera only; an oblique view reaches past it
    heights = plane(500.0, 0.0, 0.0)
    with Dem(write_dem(tmp_path / "dem.tif", heights)) as dem:
        res = apply_camera_model(result_with([[490.0, 395.0, 510.0, 405.0], [490.0, 700.0, 510.0, 720.0]], meta(gimbal_pitch=-3.0)), dem=dem)
    pos = positions_of(res)
    assert pos.located(2).tolist() == [False, True]
    assert pos.reason_for(0) == "part of the box is outside the DEM"


def test_a_ground_elevation_and_a_dem_together_are_refused(tmp_path):
    path = write_dem(tmp_path / "flat.tif", plane(500.0, 0.0, 0.0, size=10))
    with pytest.raises(SSPNetError, match="not both"):
        apply_camera_models([], ground_elevation=500.0, dem=path)


def test_open_ground_checks_the_options_before_any_work(tmp_path):
    from sspnet_cli.geo.camera import open_ground

    assert open_ground() is None and open_ground(ground_elevation=-12.5) is None
    with pytest.raises(SSPNetError, match="finite"):
        open_ground(ground_elevation=float("nan"))
    with pytest.raises(SSPNetError, match="no such file"):
        open_ground(dem=tmp_path / "missing.tif")
    dem = open_ground(dem=write_dem(tmp_path / "flat.tif", plane(500.0, 0.0, 0.0, size=10)))
    with dem:
        assert isinstance(dem, Dem)
