"""The camera model's geometry: rays, ground points, the error budget, against independent sums
(pyproj's geodesic forward problem from the camera, plane trigonometry)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from sspnet_cli.geo.camera import (
    ATTITUDE_ERROR_DEG,
    CameraModelError,
    axis_rotation,
    camera_model,
    frame_footprint,
    position_errors,
    project_boxes,
    rotation,
)
from sspnet_cli.geo.transform import signed_area

GEOD = Geod(ellps="WGS84")
LON, LAT = 8.5417, 47.3769
W, H = 4000, 3000
F = 3000.0  # focal length, px
HEIGHT = 120.0


def meta(**changes) -> dict:
    """Metadata of a DJI-like photo: 4000 x 3000, calibrated f = 3000 px, 120 m up, nadir."""
    camera = {
        "lon": LON, "lat": LAT, "altitude": 520.0, "relative_altitude": HEIGHT,
        "gimbal_yaw": 0.0, "gimbal_pitch": -90.0, "gimbal_roll": 0.0,
        "calibrated_focal_length": F, "calibrated_cx": W / 2, "calibrated_cy": H / 2,
    }
    camera.update(changes)
    return {k: v for k, v in camera.items() if v is not None}


def lonlat_of(model, cols, rows) -> np.ndarray:
    xy, why = model.ground_xy(np.atleast_1d(np.asarray(cols, float)), np.atleast_1d(np.asarray(rows, float)))
    assert all(w is None for w in why), why
    return model.to_lonlat(xy)


def expected(azimuth: float, distance: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(LON, LAT, azimuth, distance)
    return lon, lat


def close_on_ground(lonlat, target, metres=1e-3) -> None:
    _, _, d = GEOD.inv(lonlat[0], lonlat[1], target[0], target[1])
    assert d < metres, f"{d:.6f} m apart"


# -- rotation ---------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.floats(-360, 360), st.floats(-180, 180), st.floats(-180, 180))
def test_rotation_is_a_proper_rotation(yaw, pitch, roll):
    r = rotation(yaw, pitch, roll)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_rotation_axes_follow_the_gimbal_conventions():
    # level, yaw 0: looking north, image right = east, image down = down
    np.testing.assert_allclose(rotation(0, 0, 0) @ [0, 0, 1], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rotation(0, 0, 0) @ [1, 0, 0], [1, 0, 0], atol=1e-12)
    # nadir, yaw 0: the top of the image (-y) faces north
    np.testing.assert_allclose(rotation(0, -90, 0) @ [0, -1, 0], [0, 1, 0], atol=1e-12)
    # yaw 90 turns the view east
    np.testing.assert_allclose(rotation(90, 0, 0) @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    # positive roll turns the image's right side down
    assert (rotation(0, 0, 30) @ [1, 0, 0])[2] == pytest.approx(-0.5)
    # a turn of 90 degrees about the vertical takes north to west (right-handed, up)
    np.testing.assert_allclose(axis_rotation([0, 0, 1], 90) @ [0, 1, 0], [-1, 0, 0], atol=1e-12)


# -- the cases ------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1.0, 250.0, 1999.0])
def test_nadir_yaw_0_pixel_right_lands_east(d):
    model = camera_model(meta(), W, H)
    got = lonlat_of(model, W / 2 + d, H / 2)[0]
    close_on_ground(got, expected(90.0, d * HEIGHT / F))
    # and a pixel below the centre lands south
    got = lonlat_of(model, W / 2, H / 2 + d)[0]
    close_on_ground(got, expected(180.0, d * HEIGHT / F))


def test_nadir_image_centre_lands_under_the_camera():
    model = camera_model(meta(gimbal_yaw=37.0), W, H)
    close_on_ground(lonlat_of(model, W / 2, H / 2)[0], (LON, LAT), metres=1e-6)


@pytest.mark.parametrize("yaw, azimuth", [(90.0, 180.0), (180.0, 270.0), (-90.0, 0.0), (111.3, 201.3)])
def test_yaw_turns_the_image(yaw, azimuth):
    model = camera_model(meta(gimbal_yaw=yaw), W, H)
    d = 800.0
    close_on_ground(lonlat_of(model, W / 2 + d, H / 2)[0], expected(azimuth, d * HEIGHT / F))
    # the top of the image faces the heading
    close_on_ground(lonlat_of(model, W / 2, H / 2 - d)[0], expected(yaw, d * HEIGHT / F))


@pytest.mark.parametrize("yaw", [0.0, 45.0, 250.0])
def test_oblique_pitch_moves_the_centre_forward(yaw):
    model = camera_model(meta(gimbal_pitch=-60.0, gimbal_yaw=yaw), W, H)
    close_on_ground(lonlat_of(model, W / 2, H / 2)[0], expected(yaw, HEIGHT * math.tan(math.radians(30))))


def test_roll_turns_the_image_about_the_optical_axis():
    level = camera_model(meta(gimbal_pitch=-30.0, gimbal_yaw=10.0), W, H)
    rolled = camera_model(meta(gimbal_pitch=-30.0, gimbal_yaw=10.0, gimbal_roll=7.0), W, H)
    u, v = np.array([900.0, -300.0, 0.0]), np.array([200.0, 700.0, 0.0])
    r = math.radians(7.0)
    got = lonlat_of(rolled, W / 2 + u, H / 2 + v)
    want = lonlat_of(level, W / 2 + u * math.cos(r) - v * math.sin(r), H / 2 + u * math.sin(r) + v * math.cos(r))
    for a, b in zip(got, want):
        close_on_ground(a, b, metres=1e-6)
    # positive roll lowers the right side: its ray is steeper, so it meets the ground nearer
    xy, _ = rolled.ground_xy(np.array([0.0, W]), np.array([H / 2, H / 2]))
    assert np.hypot(*xy[1]) < np.hypot(*xy[0])


def test_ground_elevation_sets_the_height():
    model = camera_model(meta(relative_altitude=None), W, H, ground_elevation=470.0)
    assert model.height_above_ground == pytest.approx(50.0)
    close_on_ground(lonlat_of(model, W / 2 + 600, H / 2)[0], expected(90.0, 600 * 50.0 / F))


def test_footprint_of_a_nadir_photo():
    model = camera_model(meta(gimbal_yaw=30.0), W, H)
    ring = frame_footprint(model, W, H)
    assert signed_area(ring[None])[0] > 0 and (ring[0] == ring[-1]).all()
    sides = [GEOD.inv(*ring[i], *ring[i + 1])[2] for i in range(4)]
    assert sorted(sides) == pytest.approx(sorted([H * HEIGHT / F, W * HEIGHT / F] * 2), abs=1e-3)


# -- the horizon ------------------------------------------------------------------------------


def test_level_camera_sees_ground_only_below_the_horizon():
    model = camera_model(meta(gimbal_pitch=0.0), W, H)
    xy, why = model.ground_xy(np.array([W / 2, W / 2, W / 2]), np.array([H / 2 - 100, H / 2, H / 2 + 100]))
    assert why[0] == why[1] == "at or above the horizon" and np.isnan(xy[:2]).all()
    assert why[2] is None and xy[2, 1] == pytest.approx(HEIGHT * F / 100)


def test_no_ray_meets_flat_ground_beyond_the_earths_horizon():
    # 120 m up, the horizon is about 39 km away; 2 px below the centre is 180 km out on a plane
    model = camera_model(meta(gimbal_pitch=0.0), W, H)
    xy, why = model.ground_xy(np.array([W / 2, W / 2]), np.array([H / 2 + 2, H / 2 + 20]))
    assert why == ["at or above the horizon", None]
    assert 17_000 < xy[1, 1] < 19_000


def test_boxes_above_the_horizon_keep_no_position():
    model = camera_model(meta(gimbal_pitch=-5.0), W, H)
    boxes = np.array([[1900.0, 100.0, 1910.0, 120.0], [1900.0, 2900.0, 1910.0, 2920.0], [1900.0, 1200.0, 1910.0, 1260.0]])
    pos = project_boxes(model, boxes)
    # the horizon is at row 1500 - 3000 tan(5 deg) = 1237.5: the last box straddles it
    assert pos.located(3).tolist() == [False, True, False]
    assert pos.reason_for(0) == pos.reason_for(2) == "part of the box is at or above the horizon"
    assert pos.reason_for(1) is None
    assert np.isnan(pos.rings[0]).all() and np.isnan(pos.error_m[0]) and np.isfinite(pos.error_m[1])


def test_a_frame_that_sees_no_ground_is_refused():
    with pytest.raises(CameraModelError, match="horizon"):
        camera_model(meta(gimbal_pitch=30.0), W, H)  # the bottom edge looks 3.4 deg up
    assert camera_model(meta(gimbal_pitch=25.0), W, H).pitch == 25.0  # its bottom edge sees ground


# -- boxes ------------------------------------------------------------------------------------


def test_box_rings_are_the_ground_points_of_their_corners():
    model = camera_model(meta(gimbal_pitch=-70.0, gimbal_yaw=200.0, gimbal_roll=2.0), W, H)
    boxes = np.array([[100.0, 200.0, 130.0, 260.0], [3000.5, 2500.25, 3010.0, 2530.0]])
    pos = project_boxes(model, boxes)
    assert pos.source == "camera" and pos.rings.shape == (2, 5, 2) and pos.centres.shape == (2, 2)
    assert (signed_area(pos.rings) > 0).all()
    for box, ring, centre in zip(boxes, pos.rings, pos.centres):
        x1, y1, x2, y2 = box
        corners = lonlat_of(model, [x1, x1, x2, x2], [y1, y2, y2, y1])
        for corner in corners:
            assert np.hypot(*(ring[:4] - corner).T).min() < 1e-12
        np.testing.assert_allclose(centre, lonlat_of(model, (x1 + x2) / 2, (y1 + y2) / 2)[0], atol=1e-12)
    assert pos.note is None and pos.reasons == [None, None]


def test_no_boxes_no_positions():
    pos = project_boxes(camera_model(meta(), W, H), np.zeros((0, 4)))
    assert pos.source == "camera" and pos.rings.shape == (0, 5, 2) and pos.error_m.shape == (0,)


# -- the error budget -------------------------------------------------------------------------


def analytic_nadir_error(alpha_deg: float, h: float = HEIGHT, e: float = ATTITUDE_ERROR_DEG, dh: float = 2.0) -> float:
    """Error of the ground point alpha_deg east of nadir, camera yaw 0, by plane trigonometry."""
    a, t = math.radians(alpha_deg), math.radians(e)
    r = h * math.tan(a)
    heading = 2 * r * math.sin(t / 2)  # the point swings about the nadir point
    across = max(abs(h * math.tan(a + s * t) - r) for s in (1, -1))  # tilt in the east-west plane
    along = math.hypot(r * (1 / math.cos(t) - 1), h * math.tan(t))  # tilt in the north-south plane
    height = dh * math.tan(a)
    return math.sqrt(heading**2 + across**2 + along**2 + height**2)


@pytest.mark.parametrize("alpha", [0.0, 10.0, 33.0])
def test_error_budget_matches_plane_trigonometry(alpha):
    model = camera_model(meta(), W, H)
    col = W / 2 + F * math.tan(math.radians(alpha))
    err = position_errors(model, np.array([col]), np.array([H / 2]))[0]
    assert err == pytest.approx(analytic_nadir_error(alpha), rel=1e-6)


def test_error_at_nadir_centre_is_two_tilts():
    model = camera_model(meta(gimbal_yaw=123.0), W, H)
    err = position_errors(model, np.array([W / 2]), np.array([H / 2]))[0]
    assert err == pytest.approx(math.sqrt(2) * HEIGHT * math.tan(math.radians(1)), rel=1e-9)


def test_error_grows_towards_the_horizon_and_is_infinite_beyond_reach():
    model = camera_model(meta(gimbal_pitch=-30.0), W, H)
    rows = np.array([H - 1.0, H / 2, H / 2 - 1000.0, H / 2 - F * math.tan(math.radians(29.5))])
    err = position_errors(model, np.full(4, W / 2), rows)
    assert err[0] < err[1] < err[2] and np.isfinite(err[:3]).all()
    assert err[3] == np.inf  # 0.5 deg below the horizon: a 1 deg error lifts it above
