"""Result writers (GeoJSON, CSV, COCO JSON), atomic writes and overlays."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import tracemalloc

import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from rasterio.transform import Affine
from rasterio.windows import Window as RioWindow

from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.transform import signed_area
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.atomic import RESULT_SUFFIXES, atomic_write, check_writable
from sspnet_cli.outputs.overlay import save_overlay
from sspnet_cli.outputs.writers import WRITERS, write_results
from sspnet_cli.types import Detections, ImageResult

UTM33N_AFFINE = (0.5, 0.0, 500000.0, 0.0, -0.5, 5000000.0)
BOXES = [[10.0, 20.0, 30.5, 40.25], [100.126, 0.0, 112.0, 15.0]]
SCORES = [0.91234567, 0.5]
CAMERA = {"lon": -94.3487583, "lat": 45.0379917, "altitude": 422.551, "relative_altitude": 61.1, "make": "DJI"}


def detections(boxes=BOXES, scores=SCORES) -> Detections:
    return Detections(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float32),
        torch.ones(len(scores), dtype=torch.int64),
    )


@pytest.fixture
def geotiff(tmp_path):
    """A 200 x 100 RGB GeoTIFF in UTM 33N (EPSG:32633), 0.5 m pixels."""
    path = tmp_path / "ortho.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200, height=100, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(*UTM33N_AFFINE)) as ds:
        ds.write(np.full((3, 100, 200), 90, np.uint8))
    return path


def geo_result(path) -> ImageResult:
    with open_source(path) as src:
        return ImageResult("ortho.tif", src.width, src.height, detections(), src.georef)


def plain_result(name="DJI 0005, vol. 2 — é.JPG", camera=CAMERA) -> ImageResult:
    return ImageResult(name, 1058, 997, detections(), None, camera)


# -- GeoJSON ------------------------------------------------------------------------------


def test_geojson_of_a_georeferenced_raster(tmp_path, geotiff):
    out = tmp_path / "out.geojson"
    write_results(out, [geo_result(geotiff)], {"model": "sspnet-r50", "tile": [640, 512]})
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and doc["sspnet:coordinates"] == "wgs84"
    assert doc["sspnet:run"] == {"model": "sspnet-r50", "tile": [640, 512]}
    assert "crs" not in doc  # RFC 7946 removed it
    ref = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    assert len(doc["features"]) == 2
    for feature, box, score in zip(doc["features"], BOXES, SCORES):
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert ring.shape == (5, 2) and ring[0].tolist() == ring[-1].tolist()
        assert signed_area(ring[None])[0] > 0  # counter-clockwise
        assert (np.abs(ring[:, 0]) <= 180).all() and (np.abs(ring[:, 1]) <= 90).all()
        # each pixel corner lands where pyproj puts its UTM position, independently computed
        x1, y1, x2, y2 = box
        for col, row in ((x1, y1), (x1, y2), (x2, y2), (x2, y1)):
            lon, lat = ref.transform(500000.0 + 0.5 * col, 5000000.0 - 0.5 * row)
            assert np.hypot(ring[:4, 0] - lon, ring[:4, 1] - lat).min() < 2e-8
        props = feature["properties"]
        assert list(props) == ["image", "score", "label", "pixel_bbox", "position_source", "ground_size_m"]
        assert props["image"] == "ortho.tif" and props["label"] == "person"
        assert props["position_source"] == "raster"
        assert props["score"] == round(score, 4)
        assert props["pixel_bbox"] == [round(float(np.float32(v)), 2) for v in box]
    # the box at column 10 lies 5 m east of the zone's central meridian (15 E)
    assert doc["features"][0]["geometry"]["coordinates"][0][0][0] == pytest.approx(15.0 + 5 / (111_320 * np.cos(np.radians(45.1))), abs=1e-6)


def test_geojson_of_the_real_osbs_raster(tmp_path, shared_dir):
    path = shared_dir / "data" / "geo" / "OSBS_029.tif"
    if not path.exists():
        pytest.skip("OSBS_029.tif not present (SSPNET_SHARED_DIR points at the real-data folder)")
    with open_source(path) as src:
        result = ImageResult(str(path), src.width, src.height, detections([[0.0, 0.0, 400.0, 400.0]], [0.8]), src.georef)
    out = tmp_path / "osbs.geojson"
    write_results(out, [result], {})
    ring = np.array(json.loads(out.read_text())["features"][0]["geometry"]["coordinates"][0])
    ref = Transformer.from_crs("EPSG:32617", "EPSG:4326", always_xy=True)
    # the raster's corners from its affine: origin E 404211.9, N 3285142.9, 0.1 m pixels
    for x, y in ((404211.9, 3285142.9), (404251.9, 3285102.9)):
        lon, lat = ref.transform(x, y)
        assert np.hypot(ring[:, 0] - lon, ring[:, 1] - lat).min() < 2e-8
    assert 29.68 < ring[:, 1].min() < 29.70 and -82.0 < ring[:, 0].min() < -81.98


def test_geojson_of_plain_images_has_null_geometries_and_pixel_boxes(tmp_path):
    """Pixel coordinates are not lon/lat: as geometries they would be read as positions (a
    "latitude" of 400), so plain photos get RFC 7946's unlocated features."""
    out = tmp_path / "out.geojson"
    write_results(out, [plain_result()], {})
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["sspnet:coordinates"] == "pixel"
    feature = doc["features"][0]
    assert feature["geometry"] is None
    assert feature["properties"]["pixel_bbox"] == [10.0, 20.0, 30.5, 40.25]
    assert feature["properties"]["position_source"] == "pixel"
    # written by hand, without the camera model (sspnet detect --no-camera-model)
    assert feature["properties"]["position_reason"] == "not georeferenced; the camera model was not applied"
    assert doc["sspnet:position_sources"] == {"raster": 0, "camera": 0, "pixel": 2}
    assert feature["properties"]["image"] == "DJI 0005, vol. 2 — é.JPG"
    assert feature["properties"]["camera"] == {"lon": -94.3487583, "lat": 45.0379917, "altitude": 422.55, "relative_altitude": 61.1}


def test_geojson_mixed_run_leaves_pixel_features_unlocated(tmp_path, geotiff):
    out = tmp_path / "out.geojson"
    write_results(out, [plain_result(camera=None), geo_result(geotiff)], {})
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["sspnet:coordinates"] == "mixed"
    kinds = [(f["properties"]["position_source"], f["geometry"] is None) for f in doc["features"]]
    assert kinds == [("pixel", True), ("pixel", True), ("raster", False), ("raster", False)]
    assert doc["features"][0]["properties"]["position_reason"] == "not georeferenced"
    assert doc["sspnet:position_sources"] == {"raster": 2, "camera": 0, "pixel": 2}
    assert "camera" not in doc["features"][0]["properties"]
    for f in doc["features"][2:]:  # only real positions: all valid lon/lat
        ring = np.array(f["geometry"]["coordinates"][0])
        assert (np.abs(ring[:, 1]) <= 90).all()


def test_geojson_without_detections_is_valid(tmp_path):
    out = tmp_path / "empty.geojson"
    write_results(out, [ImageResult("a.jpg", 10, 10, Detections.empty())], None)
    doc = json.loads(out.read_text())
    assert doc["features"] == [] and doc["type"] == "FeatureCollection"
    write_results(out, [], None)
    assert json.loads(out.read_text())["features"] == []


@pytest.mark.parametrize("suffix", RESULT_SUFFIXES)
def test_writers_are_deterministic(tmp_path, geotiff, suffix):
    results = [plain_result(), geo_result(geotiff)]
    a, b = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    write_results(a, results, {"model": "m", "options": {"tile": "640x512", "overlap": 30}})
    write_results(b, results, {"options": {"overlap": 30, "tile": "640x512"}, "model": "m"})
    assert a.read_bytes() == b.read_bytes()
    # a score that is not exactly representable is written at fixed precision
    assert b"0.9123" in a.read_bytes() and b"0.91234" not in a.read_bytes()


# -- CSV ----------------------------------------------------------------------------------


def test_csv_columns_and_quoting(tmp_path, geotiff):
    out = tmp_path / "out.csv"
    tricky = 'quote " comma, café 森.jpg'
    write_results(out, [plain_result(tricky), geo_result(geotiff)], {})
    text = out.read_bytes().decode("utf-8")
    assert not text.startswith("\ufeff") and "\r" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["image", "x1", "y1", "x2", "y2", "score", "label", "lon", "lat", "ground_w_m", "ground_h_m"]
    assert len(rows) == 5
    assert rows[1] == [tricky, "10.00", "20.00", "30.50", "40.25", "0.9123", "person", "", "", "", ""]
    assert rows[2][1] == "100.13"
    geo = rows[3]
    assert geo[0] == "ortho.tif"
    ref = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    lon, lat = ref.transform(500000.0 + 0.5 * 20.25, 5000000.0 - 0.5 * 30.125)
    assert float(geo[7]) == pytest.approx(lon, abs=1e-8) and float(geo[8]) == pytest.approx(lat, abs=1e-8)
    assert len(geo[7].split(".")[1]) == 8


def test_csv_without_georeferenced_inputs_has_no_lonlat(tmp_path):
    out = tmp_path / "out.csv"
    write_results(out, [plain_result()], {})
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert header == "image,x1,y1,x2,y2,score,label"


# -- COCO JSON ----------------------------------------------------------------------------


def test_coco_json_loads_in_pycocotools(tmp_path, geotiff):
    from pycocotools.coco import COCO

    out = tmp_path / "out.json"
    empty = ImageResult("nobody here.jpg", 640, 512, Detections.empty())
    write_results(out, [plain_result(), empty, geo_result(geotiff)], {"model": "m"})
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    assert coco.loadImgs(2)[0] == {"id": 2, "file_name": "nobody here.jpg", "width": 640, "height": 512}
    assert coco.loadCats(1)[0]["name"] == "person"
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [a["bbox"] for a in anns] == [[10.0, 20.0, 20.5, 20.25], [100.13, 0.0, 11.87, 15.0]]
    assert anns[0]["score"] == 0.9123 and anns[0]["category_id"] == 1
    dets = coco.loadRes(coco.dataset["annotations"])
    assert len(dets.getAnnIds()) == 4
    from pycocotools.cocoeval import COCOeval

    ev = COCOeval(coco, dets, "bbox")
    ev.evaluate()
    ev.accumulate()  # the file also works as ground truth: its own detections match it


# -- format by suffix, atomic writes, check_writable ---------------------------------------


def test_suffixes_choose_the_format(tmp_path):
    assert tuple(WRITERS) == RESULT_SUFFIXES
    out = tmp_path / "UPPER.GeoJSON"
    write_results(out, [plain_result()], {})
    assert json.loads(out.read_text())["type"] == "FeatureCollection"
    with pytest.raises(SSPNetError, match="unknown output format"):
        write_results(tmp_path / "out.xlsx", [plain_result()], {})


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    out.write_text("old contents\n")
    calls = {"n": 0}
    real = WRITERS[".csv"].__globals__["fixed"]

    def failing_fixed(value, decimals):
        calls["n"] += 1
        if calls["n"] > 6:  # midway through the first rows
            raise RuntimeError("disk on fire")
        return real(value, decimals)

    monkeypatch.setitem(WRITERS[".csv"].__globals__, "fixed", failing_fixed)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_results(out, [plain_result()] * 50, {})
    assert out.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["out.csv"]  # no temporary file left


def test_atomic_write_creates_nothing_on_failure_and_normal_permissions(tmp_path):
    out = tmp_path / "new.bin"
    with pytest.raises(ValueError):
        with atomic_write(out, "wb") as f:
            f.write(b"partial")
            raise ValueError("stop")
    assert not out.exists() and os.listdir(tmp_path) == []
    with atomic_write(out, "wb") as f:
        f.write(b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_check_writable_refuses_unknown_suffixes_and_bad_folders(tmp_path):
    # a folder that does not exist yet is fine (writing creates it), and checking creates nothing
    assert check_writable(tmp_path / "new" / "deeper" / "out.geojson").name == "out.geojson"
    assert not (tmp_path / "new").exists()
    for bad, match in ((tmp_path / "out.txt", "unknown output format"), (tmp_path / "out", "no suffix")):
        with pytest.raises(SSPNetError, match=match) as info:
            check_writable(bad)
        assert "\n" not in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SSPNetError, match="cannot create the folder"):
        check_writable(tmp_path / "file" / "out.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(SSPNetError, match="is a folder"):
        check_writable(tmp_path / "dir.csv")
    assert check_writable(tmp_path / "o.png", suffixes=(".png",)).name == "o.png"


def test_check_writable_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: simulate the refusal the OS would give
        import tempfile

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        locked.chmod(0o500)
    try:
        with pytest.raises(SSPNetError, match="not writable") as info:
            check_writable(locked / "out.json")
        assert "Permission denied" in str(info.value) and "\n" not in str(info.value)
    finally:
        locked.chmod(0o700)


# -- overlays -----------------------------------------------------------------------------


def test_overlay_draws_scaled_boxes(tmp_path, geotiff):
    import cv2

    out = tmp_path / "overlay.png"
    with open_source(geotiff) as src:
        save_overlay(out, src, detections([[100.0, 40.0, 140.0, 80.0]], [0.9]), max_side=100, show_scores=False)
    img = cv2.imread(str(out))[..., ::-1]
    assert img.shape == (50, 100, 3)
    magenta = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] > 200)
    ys, xs = np.nonzero(magenta)
    assert 48 <= xs.min() <= 52 and 68 <= xs.max() <= 72 and 18 <= ys.min() <= 22 and 38 <= ys.max() <= 42
    with pytest.raises(SSPNetError, match="overlay images"):
        with open_source(geotiff) as src:
            save_overlay(tmp_path / "overlay.gif", src, detections())


def test_overlay_of_a_huge_raster_stays_small_in_memory(tmp_path):
    side = 6000  # 108 MB of RGB; the overlay may use a few per cent of that
    path = tmp_path / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=3, dtype="uint8",
                       tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                       crs="EPSG:32633", transform=Affine(*UTM33N_AFFINE)) as ds:
        block = np.full((3, 1000, side), 120, np.uint8)
        for y in range(0, side, 1000):
            ds.write(block, window=RioWindow(0, y, side, 1000))
    del block
    out = tmp_path / "huge.jpg"
    tracemalloc.start()
    try:
        with open_source(path) as src:
            save_overlay(out, src, detections([[4000.0, 4000.0, 4010.0, 4020.0]], [0.7]), max_side=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20e6
    import cv2

    assert cv2.imread(str(out)).shape == (1000, 1000, 3)
