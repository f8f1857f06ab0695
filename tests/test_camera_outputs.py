"""Writers take every position from positions_of: camera-model positions in GeoJSON and CSV,
runs mixing raster, camera and pixel positions, and detect -> camera model -> GeoJSON end to end
on the real DJI photo."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from pyproj import Geod
from rasterio.transform import Affine

from fakes import RedBlobModel
from test_camera_metadata import with_xmp
from sspnet_cli.geo.camera import apply_camera_model, apply_camera_models, camera_model
from sspnet_cli.geo.positions import positions_of
from sspnet_cli.geo.transform import signed_area
from sspnet_cli.inference.engine import Detector
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.outputs.writers import write_results
from sspnet_cli.types import Detections, ImageResult

GEOD = Geod(ellps="WGS84")
CAMERA = {"lon": -94.3487583, "lat": 45.0379917, "altitude": 422.551, "relative_altitude": 61.1,
          "gimbal_yaw": 111.3, "gimbal_pitch": -88.0, "gimbal_roll": 0.0, "flight_yaw": 110.6,
          "calibrated_focal_length": 3666.666504, "calibrated_cx": 2736.0, "calibrated_cy": 1539.0, "make": "DJI"}
BOXES = [[10.0, 20.0, 30.5, 40.25], [500.0, 480.0, 512.0, 505.0]]


def detections(boxes=BOXES) -> Detections:
    n = len(boxes)
    return Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.linspace(0.9, 0.5, n), torch.ones(n, dtype=torch.int64))


def camera_result(name="DJI_0005.JPG", camera=CAMERA, boxes=BOXES) -> ImageResult:
    return apply_camera_model(ImageResult(name, 1058, 997, detections(boxes), None, camera))


@pytest.fixture
def raster_result(tmp_path) -> ImageResult:
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200, height=100, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(0.5, 0, 500000.0, 0, -0.5, 5000000.0)) as ds:
        ds.write(np.full((3, 100, 200), 90, np.uint8))
    with open_source(path) as src:
        return ImageResult("ortho.tif", src.width, src.height, detections(), src.georef)


def features_of(path) -> tuple[dict, list[dict]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc, doc["features"]


def test_geojson_of_a_camera_photo_is_in_wgs84(tmp_path):
    result = camera_result()
    pos = positions_of(result)
    out = tmp_path / "out.geojson"
    write_results(out, [result], {})
    doc, features = features_of(out)
    assert doc["sspnet:coordinates"] == "wgs84"
    assert doc["sspnet:position_sources"] == {"raster": 0, "camera": 2, "pixel": 0}
    for i, feature in enumerate(features):
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert feature["geometry"]["type"] == "Polygon" and ring.shape == (5, 2) and (ring[0] == ring[-1]).all()
        assert signed_area(ring[None])[0] > 0
        np.testing.assert_allclose(ring, pos.rings[i], atol=1e-8)
        props = feature["properties"]
        assert list(props) == ["image", "score", "label", "pixel_bbox", "position_source", "position_error_m", "position_note", "ground_size_m", "camera"]
        assert props["position_source"] == "camera"
        assert props["position_error_m"] == round(float(pos.error_m[i]), 2) and 1.0 < props["position_error_m"] < 3.0
        assert "principal point" in props["position_note"]
        assert props["camera"]["focal_length_px"] == 3666.67 and props["camera"]["height_above_ground"] == 61.1
        assert props["camera"]["gimbal_yaw"] == 111.3 and "calibrated_cx" not in props["camera"]
    # a person a few dozen centimetres across: the ring is that small on the ground
    box_m = GEOD.inv(*pos.rings[0][0], *pos.rings[0][2])[2]
    assert box_m == pytest.approx(np.hypot(20.5, 20.25) * 61.1 / 3666.67, rel=0.02)


def test_mixed_run_of_raster_camera_and_pixel_positions(tmp_path, raster_result):
    above = dict(CAMERA, gimbal_pitch=-5.0)  # the top of this frame (7.7 deg above its centre) is sky
    results = [
        raster_result,
        camera_result(),
        camera_result("tilted.JPG", above, [[10.0, 0.0, 20.0, 10.0], [500.0, 980.0, 510.0, 990.0]]),
        apply_camera_model(ImageResult("phone.jpg", 640, 480, detections([[1.0, 2.0, 3.0, 4.0]]))),
        ImageResult("no model.JPG", 1058, 997, detections([[1.0, 2.0, 3.0, 4.0]]), None, CAMERA),
    ]
    out = tmp_path / "mixed.geojson"
    write_results(out, results, {})
    doc, features = features_of(out)
    assert doc["sspnet:coordinates"] == "mixed"
    assert doc["sspnet:position_sources"] == {"raster": 2, "camera": 3, "pixel": 3}
    got = [(f["properties"]["image"], f["properties"]["position_source"], f["geometry"] is None, f["properties"].get("position_reason")) for f in features]
    assert got == [
        ("ortho.tif", "raster", False, None),
        ("ortho.tif", "raster", False, None),
        ("DJI_0005.JPG", "camera", False, None),
        ("DJI_0005.JPG", "camera", False, None),
        ("tilted.JPG", "pixel", True, "part of the box is at or above the horizon"),
        ("tilted.JPG", "camera", False, None),
        ("phone.jpg", "pixel", True, "no GPS position in the file's metadata"),
        ("no model.JPG", "pixel", True, "not georeferenced; the camera model was not applied"),
    ]
    assert "position_error_m" not in features[0]["properties"]  # a raster's own error is not known
    for f in features:
        if f["geometry"] is not None:
            ring = np.array(f["geometry"]["coordinates"][0])
            assert (np.abs(ring[:, 1]) <= 90).all() and (np.abs(ring[:, 0]) <= 180).all()


def test_all_pixel_run_has_unlocated_features_with_reasons(tmp_path):
    bad = dict(CAMERA, gimbal_pitch=None)
    out = tmp_path / "px.geojson"
    write_results(out, [camera_result(camera={k: v for k, v in bad.items() if v is not None})], {})
    doc, features = features_of(out)
    assert doc["sspnet:coordinates"] == "pixel"
    assert features[0]["geometry"] is None and features[0]["properties"]["pixel_bbox"] == [10.0, 20.0, 30.5, 40.25]
    assert features[0]["properties"]["position_source"] == "pixel"
    assert features[0]["properties"]["position_reason"].startswith("no gimbal pitch")


def test_csv_has_the_centre_ground_point_and_its_error(tmp_path, raster_result):
    above = dict(CAMERA, gimbal_pitch=-5.0)
    results = [raster_result, camera_result(), camera_result("tilted.JPG", above, [[10.0, 0.0, 20.0, 10.0]])]
    out = tmp_path / "out.csv"
    write_results(out, results, {})
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0] == ["image", "x1", "y1", "x2", "y2", "score", "label", "lon", "lat", "position_error_m", "ground_w_m", "ground_h_m",
                       "position_quality"]  # the tilted photo looks 85 degrees off nadir
    assert rows[1][9] == "" and rows[1][7] != ""  # raster: a position, no error estimate
    pos = positions_of(results[1])
    for row, centre, err in zip(rows[3:5], pos.centres, pos.error_m):
        assert row[0] == "DJI_0005.JPG"
        assert float(row[7]) == pytest.approx(centre[0], abs=1e-8) and float(row[8]) == pytest.approx(centre[1], abs=1e-8)
        assert row[9] == f"{err:.2f}"
    assert rows[5][7:] == ["", "", "", "", "", "oblique"]


def test_csv_of_rasters_only_has_positions_and_ground_sizes(tmp_path, raster_result):
    out = tmp_path / "r.csv"
    write_results(out, [raster_result], {})
    lines = out.read_text().splitlines()
    assert lines[0] == "image,x1,y1,x2,y2,score,label,lon,lat,ground_w_m,ground_h_m"
    assert lines[1].endswith(",10.25,10.13")  # 20.5 x 20.25 px of 0.5 m


def test_detect_then_camera_model_on_the_real_dji_photo(tmp_path, shared_dir):
    """What ``sspnet detect "AWPE Pigeon Lake 2020 DJI_0005.JPG" --out x.geojson`` does, with a
    detector that finds red blobs painted on a copy of the photo (metadata kept)."""
    real = shared_dir / "data" / "geo" / "AWPE Pigeon Lake 2020 DJI_0005.JPG"
    with Image.open(real) as im:
        exif, xmp = im.info["exif"], im.info["xmp"]
        rgb = np.array(im.convert("RGB"))
    blobs = [(100, 150, 112, 170), (800, 700, 810, 716)]
    for x1, y1, x2, y2 in blobs:
        rgb[y1:y2, x1:x2] = (255, 0, 0)
    copy = tmp_path / "AWPE copy DJI_0005.JPG"
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", exif=exif, quality=98, subsampling=0)
    copy.write_bytes(with_xmp(buffer.getvalue(), xmp))

    detector = Detector.from_model(RedBlobModel(), device="cpu", tile=(640, 512), overlap=30, score_thr=0.3)
    results = [r for r in detector.run([copy])]
    assert len(results[0].detections) == 2
    results = apply_camera_models(results)
    out = tmp_path / "x.geojson"
    write_results(out, results, {})
    doc, features = features_of(out)
    assert doc["sspnet:coordinates"] == "wgs84" and len(features) == 2

    model = camera_model(results[0].camera, 1058, 997)
    boxes = results[0].detections.boxes.numpy()
    for feature, box in zip(sorted(features, key=lambda f: f["properties"]["pixel_bbox"][0]), sorted(boxes.tolist())):
        ring = np.array(feature["geometry"]["coordinates"][0])
        # the blob's centre pixel lands inside its polygon's corners, a few metres from the camera
        centre_px = np.array([(box[0] + box[2]) / 2]), np.array([(box[1] + box[3]) / 2])
        lon, lat = model.to_lonlat(model.ground_xy(*centre_px)[0])[0]
        assert ring[:4, 0].min() < lon < ring[:4, 0].max() and ring[:4, 1].min() < lat < ring[:4, 1].max()
        assert GEOD.inv(CAMERA["lon"], CAMERA["lat"], lon, lat)[2] < 15.0
    # the blob near the top-left corner lies up-left of the camera in the image: the photo's top
    # faces 111.3 deg, so up-left is roughly north-east (111.3 - 45 = 66 deg)
    first = sorted(features, key=lambda f: f["properties"]["pixel_bbox"][0])[0]
    corner = np.array(first["geometry"]["coordinates"][0])[:4].mean(axis=0)
    azimuth = GEOD.inv(CAMERA["lon"], CAMERA["lat"], *corner)[0]
    assert 40 < azimuth < 90
