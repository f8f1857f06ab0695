"""Pixel <-> map <-> WGS84 conversions and box rings."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer

from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.transform import (
    box_centers_lonlat,
    box_rings_lonlat,
    georef_problem,
    lonlat_to_pixel,
    map_to_pixel,
    pixel_box_rings,
    pixel_to_lonlat,
    pixel_to_map,
    signed_area,
)
from sspnet_cli.types import GeoRef

UTM33N = CRS.from_epsg(32633).to_wkt()
# 0.5 m pixels, north up, top-left corner at E 500000 (the zone's central meridian, 15 E), N 5e6
NORTH_UP = GeoRef(UTM33N, (0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0))
# the same raster rotated by 30 degrees, with a little shear
ROTATED = GeoRef(UTM33N, (0.433, -0.25, 500000.0, 0.25, 0.433 + 0.01, 5000000.0))


def test_pixel_to_map_follows_the_gdal_corner_convention():
    x, y = pixel_to_map(NORTH_UP, np.array([0.0, 1.0, 10.0]), np.array([0.0, 1.0, 4.0]))
    np.testing.assert_allclose(x, [500000.0, 500000.5, 500005.0])
    np.testing.assert_allclose(y, [5000000.0, 4999999.5, 4999998.0])


def test_lonlat_matches_pyproj_from_the_epsg_code():
    cols, rows = np.array([0.0, 123.5, 4000.0]), np.array([0.0, 77.25, 3000.0])
    lon, lat = pixel_to_lonlat(NORTH_UP, cols, rows)
    ref = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    elon, elat = ref.transform(500000.0 + 0.5 * cols, 5000000.0 - 0.5 * rows)
    np.testing.assert_allclose(lon, elon, atol=1e-10)
    np.testing.assert_allclose(lat, elat, atol=1e-10)
    # the zone's central meridian is 15 E: column 0 lies exactly on it
    assert lon[0] == pytest.approx(15.0, abs=1e-9)
    assert 45.0 < lat[0] < 45.2


def test_lonlat_round_trip_to_pixels():
    cols = np.array([0.0, 17.3, 640.0, 9999.9])
    rows = np.array([0.0, 512.0, 3.7, 12345.6])
    for georef in (NORTH_UP, ROTATED):
        lon, lat = pixel_to_lonlat(georef, cols, rows)
        c, r = lonlat_to_pixel(georef, lon, lat)
        np.testing.assert_allclose(c, cols, atol=1e-5)
        np.testing.assert_allclose(r, rows, atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(
    a=st.floats(0.01, 100.0), b=st.floats(-10.0, 10.0), d=st.floats(-10.0, 10.0), e=st.floats(-100.0, -0.01),
    c=st.floats(-1e6, 1e6), f=st.floats(-1e7, 1e7),
    col=st.floats(-1e5, 1e5), row=st.floats(-1e5, 1e5),
)
def test_pixel_map_pixel_round_trip(a, b, c, d, e, f, col, row):
    if abs(a * e - b * d) < 1e-3:  # near-singular transforms do not exist in real rasters
        return
    georef = GeoRef(UTM33N, (a, b, c, d, e, f))
    x, y = pixel_to_map(georef, col, row)
    c2, r2 = map_to_pixel(georef, x, y)
    # map coordinates up to ~1e7 carry ~1e-9 of rounding, amplified at most ~1e5 by the inverse
    assert abs(c2 - col) < 1e-3 and abs(r2 - row) < 1e-3


def test_singular_transform_is_refused():
    with pytest.raises(SSPNetError):
        map_to_pixel(GeoRef(UTM33N, (1.0, 2.0, 0.0, 2.0, 4.0, 0.0)), 1.0, 1.0)


def test_rings_are_closed_and_counter_clockwise_in_lonlat():
    boxes = np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 1.0, 1.0]])
    for georef in (NORTH_UP, ROTATED):
        rings = box_rings_lonlat(georef, boxes)
        assert rings.shape == (2, 5, 2)
        np.testing.assert_array_equal(rings[:, 0], rings[:, -1])
        assert (signed_area(rings) > 0).all()
    # north-up: the first box spans 10 m east-west and 20 m north-south around 15 E, 45 N
    rings = box_rings_lonlat(NORTH_UP, boxes[:1])[0]
    lon_span = rings[:, 0].max() - rings[:, 0].min()
    lat_span = rings[:, 1].max() - rings[:, 1].min()
    assert lat_span * 111_000 == pytest.approx(20.0, rel=0.01)
    assert lon_span * 111_000 * np.cos(np.radians(45.1)) == pytest.approx(10.0, rel=0.01)


def test_rotated_raster_gives_the_true_quadrilateral():
    ring = box_rings_lonlat(ROTATED, np.array([[0.0, 0.0, 100.0, 100.0]]))[0]
    # a rotated square: no two corners share a longitude, unlike a lon/lat bounding box
    assert len(set(np.round(ring[:4, 0], 9))) == 4


@settings(max_examples=200, deadline=None)
@given(
    x1=st.floats(-1e4, 1e4), y1=st.floats(-1e4, 1e4), w=st.floats(0.01, 1e3), h=st.floats(0.01, 1e3),
    flip=st.booleans(),
)
def test_any_box_gives_a_closed_ccw_ring(x1, y1, w, h, flip):
    georef = GeoRef(UTM33N, (0.5, 0.0, 500000.0, 0.0, 0.5 if flip else -0.5, 5000000.0))
    box = np.array([[x1, y1, x1 + w, y1 + h]])
    for rings in (box_rings_lonlat(georef, box), pixel_box_rings(box)):
        assert rings[0, 0].tolist() == rings[0, -1].tolist()
        assert signed_area(rings)[0] > 0


def test_centres_and_empty_inputs():
    boxes = np.array([[10.0, 20.0, 30.0, 60.0]])
    centre = box_centers_lonlat(NORTH_UP, boxes)
    lon, lat = pixel_to_lonlat(NORTH_UP, np.array([20.0]), np.array([40.0]))
    np.testing.assert_allclose(centre, [[lon[0], lat[0]]])
    assert box_centers_lonlat(NORTH_UP, np.zeros((0, 4))).shape == (0, 2)
    assert box_rings_lonlat(NORTH_UP, np.zeros((0, 4))).shape == (0, 5, 2)


def test_georef_problem_spots_unusable_georeferencing():
    assert georef_problem(NORTH_UP, 4000, 3000) is None
    local = 'LOCAL_CS["site grid",LOCAL_DATUM["x",0],UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
    assert "WGS84" in georef_problem(GeoRef(local, NORTH_UP.transform), 10, 10)
    wgs84 = CRS.from_epsg(4326).to_wkt()
    assert "outside the Earth" in georef_problem(GeoRef(wgs84, (1.0, 0.0, 0.0, 0.0, -1.0, 100.0)), 10, 10)
    assert "singular" in georef_problem(GeoRef(wgs84, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)), 10, 10)


def test_bad_crs_is_one_line_error():
    with pytest.raises(SSPNetError, match="CRS") as info:
        pixel_to_lonlat(GeoRef("not a crs", (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)), 0.0, 0.0)
    assert "\n" not in str(info.value)


def test_real_osbs_corners(shared_dir):
    rasterio = pytest.importorskip("rasterio")
    path = shared_dir / "data" / "geo" / "OSBS_029.tif"
    if not path.exists():
        pytest.skip("OSBS_029.tif not present (SSPNET_SHARED_DIR points at the real-data folder)")
    with rasterio.open(path) as ds:
        georef = GeoRef(ds.crs.to_wkt(), tuple(ds.transform)[:6])
        w, h = ds.width, ds.height
        x0, y0 = ds.transform @ (0, 0)
        x1, y1 = ds.transform @ (w, h)
    ring = box_rings_lonlat(georef, np.array([[0.0, 0.0, w, h]]))[0]
    ref = Transformer.from_crs("EPSG:32617", "EPSG:4326", always_xy=True)
    for (x, y) in ((x0, y0), (x1, y1), (x0, y1), (x1, y0)):
        lon, lat = ref.transform(x, y)
        assert np.min(np.hypot(ring[:4, 0] - lon, ring[:4, 1] - lat)) < 1e-9
    # about 29.69 N, 81.99 W; a 40 m square
    assert ring[:, 1].min() == pytest.approx(29.692, abs=0.01)
    assert ring[:, 0].min() == pytest.approx(-81.99, abs=0.01)
    assert (ring[:, 1].max() - ring[:, 1].min()) * 111_000 == pytest.approx(40.0, rel=0.02)
