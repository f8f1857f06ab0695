"""Camera metadata -> camera model: EXIF + DJI XMP in JPEGs written here, the real DJI photo,
focal length and principal point of full, scaled and cropped frames, and the fallbacks."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pyproj import Geod

from sspnet_cli.geo.camera import (
    CROP_NOTE,
    DIAGONAL_35MM,
    CameraModelError,
    apply_camera_model,
    camera_model,
    frame_footprint,
    intrinsics_of,
)
from sspnet_cli.geo.positions import positions_of
from sspnet_cli.imagery.exif import dji_xmp, read_exif
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.types import Detections, ImageResult

GEOD = Geod(ellps="WGS84")
REAL = ("data", "geo", "AWPE Pigeon Lake 2020 DJI_0005.JPG")


def dji_packet(values: dict, prefix: str = "drone-dji", as_elements: bool = False) -> bytes:
    if as_elements:
        body = "".join(f"<{prefix}:{k}>{v}</{prefix}:{k}>" for k, v in values.items())
        attrs = ""
    else:
        body = ""
        attrs = " ".join(f'{prefix}:{k}="{v}"' for k, v in values.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:{prefix}="http://www.dji.com/drone-dji/1.0/" {attrs}>{body}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta>' + " " * 64 + '<?xpacket end="w"?>'
    ).encode("utf-8") + b"\x00"


DJI = {
    "AbsoluteAltitude": "+530.25", "RelativeAltitude": "+100.00", "GimbalRollDegree": "+0.00",
    "GimbalYawDegree": "-45.50", "GimbalPitchDegree": "-90.00", "FlightYawDegree": "-44.00",
    "CalibratedFocalLength": "2000.0", "CalibratedOpticalCenterX": "320.0", "CalibratedOpticalCenterY": "240.0",
}


def with_xmp(jpeg: bytes, packet: bytes) -> bytes:
    """``jpeg`` with an XMP APP1 segment right after its start-of-image marker (written by hand,
    so the test does not depend on the Pillow version's ``xmp=`` support)."""
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def write_photo(path, xmp: bytes | None, width=640, height=480, gps=True, f35=None) -> None:
    exif = Image.Exif()
    exif[0x010F] = "DJI"
    if gps:
        exif.get_ifd(0x8825).update({1: "N", 2: (46.0, 30.0, 0.0), 3: "E", 4: (7.0, 15.0, 0.0), 5: b"\x00", 6: 530.25})
    if f35 is not None:
        exif.get_ifd(0x8769).update({0xA405: f35, 0x920A: 8.8})
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 100, np.uint8)).save(buffer, "JPEG", exif=exif, quality=90)
    path.write_bytes(buffer.getvalue() if xmp is None else with_xmp(buffer.getvalue(), xmp))


def photo_result(path, boxes) -> ImageResult:
    with open_source(path) as src:
        det = Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.full((len(boxes),), 0.9), torch.ones(len(boxes), dtype=torch.int64))
        return ImageResult(str(path), src.width, src.height, det, src.georef, src.camera)


# -- XMP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix, as_elements", [("drone-dji", False), ("drone-dji", True), ("dji", False)])
def test_dji_xmp_is_read_by_namespace(prefix, as_elements):
    found = dji_xmp(dji_packet(DJI, prefix, as_elements))
    assert found["RelativeAltitude"] == "+100.00" and found["CalibratedFocalLength"] == "2000.0"
    assert len(found) == len(DJI)


def test_broken_xmp_is_no_xmp():
    assert dji_xmp(b"<x:xmpmeta><rdf:RDF") == {}
    assert dji_xmp(b"") == {} and dji_xmp("\x00\x00") == {}
    # an entity bomb is refused by expat, not expanded
    bomb = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((98 + i,) + (97 + i,) * 10) for i in range(9)
    ) + b']><l a="&j;"/>'
    assert dji_xmp(bomb) == {}


def test_jpeg_with_exif_gps_and_dji_xmp(tmp_path):
    path = tmp_path / "DJI_0001.JPG"
    write_photo(path, dji_packet(DJI), f35=24)
    camera, _ = read_exif(path)
    assert camera["lat"] == pytest.approx(46.5) and camera["lon"] == pytest.approx(7.25)
    assert camera["altitude"] == pytest.approx(530.25) and camera["absolute_altitude"] == pytest.approx(530.25)
    assert camera["relative_altitude"] == 100.0 and camera["gimbal_yaw"] == -45.5 and camera["gimbal_pitch"] == -90.0
    assert (camera["calibrated_focal_length"], camera["calibrated_cx"], camera["calibrated_cy"]) == (2000.0, 320.0, 240.0)
    assert camera["focal_length_35mm"] == 24.0 and camera["focal_length"] == pytest.approx(8.8)

    # a box 100 px right of the centre of a nadir photo facing -45.5 deg: 100 * 100 / 2000 = 5 m
    # towards 44.5 deg; the centre under the camera
    res = apply_camera_model(photo_result(path, [[410.0, 230.0, 430.0, 250.0], [310.0, 230.0, 330.0, 250.0]]))
    pos = positions_of(res)
    assert pos.source == "camera" and pos.note is None
    lon, lat, _ = GEOD.fwd(7.25, 46.5, 44.5, 5.0)
    assert GEOD.inv(*pos.centres[0], lon, lat)[2] < 1e-3
    assert GEOD.inv(*pos.centres[1], 7.25, 46.5)[2] < 1e-3
    assert res.camera["focal_length_px"] == 2000.0 and res.camera["height_above_ground"] == 100.0
    # an error of 1 deg at nadir from 100 m: two tilts of 100 tan(1 deg)
    assert pos.error_m[1] == pytest.approx(math.sqrt(2) * 100 * math.tan(math.radians(1)), rel=1e-6)


def test_jpeg_with_only_exif_uses_the_35mm_focal_length_and_needs_a_height(tmp_path):
    path = tmp_path / "phone.jpg"
    write_photo(path, dji_packet({"GimbalPitchDegree": "-90", "GimbalYawDegree": "0"}), f35=24)
    res = apply_camera_model(photo_result(path, [[0.0, 0.0, 5.0, 5.0]]))
    assert positions_of(res).source == "pixel" and "RelativeAltitude" in positions_of(res).reason
    res = apply_camera_model(photo_result(path, [[0.0, 0.0, 5.0, 5.0]]), ground_elevation=480.25)
    assert positions_of(res).source == "camera"
    assert res.camera["focal_length_px"] == pytest.approx(24 / DIAGONAL_35MM * 800.0)
    assert res.camera["height_above_ground"] == pytest.approx(50.0)


# -- intrinsics --------------------------------------------------------------------------------


CAL = {"calibrated_focal_length": 3666.67, "calibrated_cx": 2736.0, "calibrated_cy": 1824.0}


def test_calibrated_full_frame_scaled_and_cropped():
    full = intrinsics_of(CAL, 5472, 3648)
    assert (full.focal_px, full.cx, full.cy, full.note) == (3666.67, 2736.0, 1824.0, None)
    half = intrinsics_of(CAL, 2736, 1824)
    assert (half.focal_px, half.cx, half.cy, half.note) == pytest.approx((3666.67 / 2, 1368.0, 912.0, None))
    crop = intrinsics_of(CAL, 1058, 997)
    assert (crop.focal_px, crop.cx, crop.cy, crop.note) == (3666.67, 529.0, 498.5, CROP_NOTE)
    with pytest.raises(CameraModelError, match="turned by 90"):
        intrinsics_of(CAL, 3648, 5472)
    with pytest.raises(CameraModelError, match="larger than"):
        intrinsics_of(CAL, 6000, 3000)
    assert intrinsics_of(CAL, 8208, 5472).focal_px == pytest.approx(3666.67 * 1.5)  # scaled up, oddly


def test_exif_focal_lengths():
    # 24 mm equivalent on a 3:2 frame: diagonal 6576 px
    k = intrinsics_of({"focal_length_35mm": 24.0}, 5472, 3648)
    assert k.focal_px == pytest.approx(24 / DIAGONAL_35MM * math.hypot(5472, 3648)) and k.source == "35 mm equivalent"
    assert (k.cx, k.cy) == (2736.0, 1824.0)
    # focal length x focal-plane resolution
    k = intrinsics_of({"focal_length": 8.8, "focal_plane_px_per_mm": 5472 / 13.2}, 5472, 3648)
    assert k.focal_px == pytest.approx(8.8 * 5472 / 13.2) and k.source == "focal plane resolution"
    # EXIF pixel dimensions of the full frame reveal a crop
    k = intrinsics_of({"focal_length_35mm": 24.0, "exif_width": 5472, "exif_height": 3648}, 1000, 1000)
    assert k.focal_px == pytest.approx(24 / DIAGONAL_35MM * math.hypot(5472, 3648)) and k.note == CROP_NOTE


def test_implausible_calibration_falls_back_to_exif():
    k = intrinsics_of({**CAL, "calibrated_focal_length": 5.7, "focal_length_35mm": 24.0}, 5472, 3648)
    assert k.source == "35 mm equivalent"
    with pytest.raises(CameraModelError, match="implausible calibrated focal length"):
        intrinsics_of({**CAL, "calibrated_focal_length": 5.7}, 5472, 3648)


# -- fallbacks: missing or nonsense metadata -----------------------------------------------------


GOOD = {"lon": 7.25, "lat": 46.5, "altitude": 530.0, "relative_altitude": 100.0, "gimbal_yaw": 10.0,
        "gimbal_pitch": -90.0, "gimbal_roll": 0.0, **CAL}


@pytest.mark.parametrize("change, reason", [
    ({"gimbal_pitch": None}, "no gimbal pitch"),
    ({"gimbal_pitch": 35.0}, "no part of the frame meets the ground (at or above the horizon"),
    ({"gimbal_pitch": 400.0}, "not an angle"),
    ({"gimbal_yaw": None}, "no gimbal yaw"),
    ({"gimbal_roll": -1e9}, "not an angle"),
    ({"calibrated_focal_length": 0.0}, "no usable focal length"),
    ({"calibrated_focal_length": float("nan")}, "no usable focal length"),
    ({"relative_altitude": None}, "no height above the ground"),
    ({"relative_altitude": -3.0}, "not above the take-off point"),
    ({"relative_altitude": 1e6}, "not a drone's height"),
    ({"lat": float("inf")}, "no usable GPS position"),
    ({"lon": None}, "no usable GPS position"),
])
def test_bad_metadata_keeps_pixel_geometry_with_the_reason(change, reason):
    camera = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    det = Detections(torch.tensor([[10.0, 10.0, 20.0, 30.0]]), torch.tensor([0.9]), torch.tensor([1]))
    res = apply_camera_model(ImageResult("x.jpg", 5472, 3648, det, None, camera))
    pos = positions_of(res)
    assert pos.source == "pixel" and reason in pos.reason, pos.reason
    assert pos.located(1).tolist() == [False] and pos.reason_for(0) == pos.reason
    assert "focal_length_px" not in res.camera


def test_flight_yaw_and_level_roll_stand_in_with_a_note():
    camera = {k: v for k, v in GOOD.items() if k not in ("gimbal_yaw", "gimbal_roll")}
    model = camera_model({**camera, "flight_yaw": 33.0}, 5472, 3648)
    assert model.yaw == 33.0 and model.roll == 0.0
    assert model.notes == ("no gimbal yaw: the aircraft's heading is used", "no gimbal roll: level assumed")


def test_a_photo_without_gps_and_a_raster_are_left_as_they_are(tmp_path):
    path = tmp_path / "nogps.jpg"
    write_photo(path, dji_packet(DJI), gps=False)
    res = apply_camera_model(photo_result(path, [[1.0, 1.0, 2.0, 2.0]]))
    assert positions_of(res).reason == "no GPS position in the file's metadata"
    raster = ImageResult("r.tif", 10, 10, Detections.empty(), georef=object(), camera=GOOD)  # type: ignore[arg-type]
    assert apply_camera_model(raster) is raster


NUMBERS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.just("12abc"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({k: NUMBERS for k in (*GOOD, "flight_yaw", "focal_length_35mm", "exif_width", "exif_height")}),
       st.integers(1, 6000), st.integers(1, 6000), st.one_of(st.none(), st.floats(-1e4, 1e4)))
def test_any_metadata_gives_positions_or_a_reason(camera, width, height, elevation):
    det = Detections(torch.tensor([[0.0, 0.0, float(width), float(height)], [1.0, 1.0, 2.0, 2.0]]), torch.tensor([0.9, 0.8]), torch.tensor([1, 1]))
    pos = positions_of(apply_camera_model(ImageResult("x.jpg", width, height, det, None, camera), ground_elevation=elevation))
    if pos.source == "pixel":
        assert pos.reason
    else:
        located = pos.located(2)
        for i in range(2):
            if located[i]:
                assert np.isfinite(pos.rings[i]).all() and (np.abs(pos.rings[i][:, 1]) <= 90).all()
                assert pos.error_m[i] >= 0
            else:
                assert pos.reason_for(i)


# -- the real DJI photo -------------------------------------------------------------------------


def test_real_dji_photo_footprint(shared_dir):
    path = shared_dir.joinpath(*REAL)
    camera, _ = read_exif(path)
    assert camera["gimbal_pitch"] == -88.0 and camera["gimbal_yaw"] == 111.3 and camera["relative_altitude"] == 61.1
    assert camera["calibrated_focal_length"] == pytest.approx(3666.67, abs=0.01)
    model = camera_model(camera, 1058, 997)
    # a crop of the 5472 x 3078 frame: focal length kept, principal point at the crop's centre
    assert model.intrinsics.note == CROP_NOTE and (model.intrinsics.cx, model.intrinsics.cy) == (529.0, 498.5)
    ring = frame_footprint(model, 1058, 997)
    sides = sorted(GEOD.inv(*ring[i], *ring[i + 1])[2] for i in range(4))
    # 61.1 m / 3666.67 px = 1.67 cm per pixel: 17.6 m x 16.6 m (2 deg of tilt stretches it a little)
    assert sides[:2] == pytest.approx([997 * 61.1 / 3666.67] * 2, rel=0.005)
    assert sides[2:] == pytest.approx([1058 * 61.1 / 3666.67] * 2, rel=0.01)
    # its centre lies 61.1 tan(2 deg) = 2.13 m ahead of the camera, towards 111.3 deg
    centre = model.to_lonlat(model.ground_xy(np.array([529.0]), np.array([498.5]))[0])[0]
    azimuth, _, distance = GEOD.inv(camera["lon"], camera["lat"], *centre)
    assert distance == pytest.approx(61.1 * math.tan(math.radians(2)), rel=1e-3)
    assert azimuth == pytest.approx(111.3, abs=0.01)
    # the camera stands inside the footprint, which lies around 45.0380 N, 94.3488 W
    assert ring[:, 1].min() < camera["lat"] < ring[:, 1].max() and ring[:, 0].min() < camera["lon"] < ring[:, 0].max()
    assert np.allclose(ring[:4].mean(axis=0), [-94.3487, 45.0380], atol=2e-4)
