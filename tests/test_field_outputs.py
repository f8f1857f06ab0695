"""Out to the search teams: GPX and KML waypoints, the person-size filter, oblique views."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from cli_helpers import run_cli, small_checkpoint
from sspnet_cli.geo.camera import apply_camera_model
from sspnet_cli.geo.plausibility import apply_size_filter
from sspnet_cli.geo.positions import positions_of
from sspnet_cli.outputs.results_io import read_results
from sspnet_cli.outputs.writers import write_results
from sspnet_cli.types import Detections, ImageResult
from test_camera_outputs import CAMERA, camera_result, raster_result  # noqa: F401  (a fixture)

gpxpy = pytest.importorskip("gpxpy")

F = 3666.666504  # px, the DJI camera's calibrated focal length
NADIR = {"lon": 10.0, "lat": 50.0, "altitude": 380.0, "relative_altitude": 80.0, "gimbal_yaw": 0.0, "gimbal_pitch": -90.0,
         "gimbal_roll": 0.0, "calibrated_focal_length": F, "calibrated_cx": 2736.0, "calibrated_cy": 1824.0,
         "datetime": "2024:06:01 14:03:22", "make": "DJI"}
W, H = 5472, 3648


def nadir_photo(boxes, camera=NADIR, name="DJI_0100.JPG") -> ImageResult:
    n = len(boxes)
    dets = Detections(torch.tensor(boxes, dtype=torch.float32), torch.linspace(0.95, 0.6, n), torch.ones(n, dtype=torch.int64))
    return apply_camera_model(ImageResult(name, W, H, dets, None, camera))


def person_and_ten_metre_box() -> ImageResult:
    """A 0.5 x 0.5 m person and a 10 m box seen from 80 m straight down (GSD 80 / f m per px)."""
    gsd = 80.0 / F
    p, big = 0.5 / gsd, 10.0 / gsd
    return nadir_photo([[2700, 1800, 2700 + p, 1800 + p], [1000, 1000, 1000 + big, 1000 + big]])


def test_gpx_round_trips_and_places_waypoints_at_the_geojson_centroids(tmp_path, raster_result):  # noqa: F811
    pixel = ImageResult("no-gps.jpg", 640, 512, Detections(torch.tensor([[1.0, 1.0, 5.0, 9.0]]), torch.tensor([0.99]), torch.ones(1, dtype=torch.int64)))
    results = [nadir_photo([[2700, 1800, 2720, 1830], [100, 100, 110, 130]]), raster_result, pixel]
    write_results(tmp_path / "a.gpx", results, {"weights": "w.pt", "options": {"score_thr": 0.3}})
    write_results(tmp_path / "a.geojson", results, {})
    gpx = gpxpy.parse((tmp_path / "a.gpx").read_text(encoding="utf-8"))
    assert len(gpx.waypoints) == 4  # every located detection; the photo without GPS has none
    scores = [float(w.name.split()[1]) for w in gpx.waypoints]
    assert scores == sorted(scores, reverse=True) and gpx.waypoints[0].name.startswith("#1 ")
    features = json.loads((tmp_path / "a.geojson").read_text())["features"]
    centroids = {tuple(f["properties"]["pixel_bbox"]): np.array(f["geometry"]["coordinates"][0][:4]).mean(axis=0)
                 for f in features if f["geometry"]}
    for w in gpx.waypoints:
        box = [float(v) for v in w.description.split("pixel box [")[1].split("]")[0].split(",")]
        ref = min(centroids.items(), key=lambda kv: max(abs(a - b) for a, b in zip(kv[0], box)))[1]
        assert abs(w.longitude - ref[0]) < 1e-7 and abs(w.latitude - ref[1]) < 1e-7
    photo = [w for w in gpx.waypoints if "DJI_0100" in w.description]
    assert photo[0].time is not None and photo[0].time.hour == 14  # EXIF DateTimeOriginal
    assert "position error" in photo[0].description and "ground size" in photo[0].description
    # sspnet report reads it back: images, boxes, scores, positions
    back = read_results(tmp_path / "a.gpx")
    assert sorted(len(r.detections) for r in back.results) == [2, 2]


def test_kml_placemarks_are_styled_by_score_and_read_back(tmp_path, raster_result):  # noqa: F811
    write_results(tmp_path / "a.kml", [raster_result], {})
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    root = ET.parse(tmp_path / "a.kml").getroot()
    marks = root.findall(".//k:Placemark", ns)
    assert len(marks) == 2 and {s.get("id") for s in root.findall(".//k:Style", ns)} == {"score-high", "score-medium", "score-low"}
    assert [m.findtext("k:styleUrl", namespaces=ns) for m in marks] == ["#score-high", "#score-medium"]  # 0.9, 0.5
    lon, lat = (float(v) for v in marks[0].findtext(".//k:coordinates", namespaces=ns).split(","))
    centre = positions_of(raster_result).centres[0]
    assert abs(lon - centre[0]) < 1e-7 and abs(lat - centre[1]) < 1e-7
    back = read_results(tmp_path / "a.kml").results[0]
    assert torch.allclose(back.detections.boxes, raster_result.detections.boxes, atol=0.01)


def test_size_filter_on_a_synthetic_nadir_photo():
    result = person_and_ten_metre_box()
    sizes = positions_of(result).sizes_m
    assert sizes[0] == pytest.approx([0.5, 0.5], rel=0.01) and sizes[1] == pytest.approx([10.0, 10.0], rel=0.01)
    flagged, check = apply_size_filter([result], (0.3, 3.0), "flag")
    assert positions_of(flagged[0]).plausible.tolist() == [True, False] and check.implausible == 1 and check.judged == 2
    dropped, check = apply_size_filter([result], (0.3, 3.0), "drop")
    assert len(dropped[0].detections) == 1 and check.dropped == 1
    assert positions_of(dropped[0]).centres.shape == (1, 2)  # positions follow the detections
    off, check = apply_size_filter([result], (0.3, 3.0), "off")
    assert positions_of(off[0]).plausible is None and check.judged == 0


def test_size_filter_on_a_georeferenced_raster(tmp_path, raster_result):  # noqa: F811
    # 0.5 m pixels: box 0 is 20.5 x 20.25 px (about 10 m), box 1 is 12 x 25 px (6 x 12.5 m)
    sizes = positions_of(raster_result).sizes_m
    assert sizes[0] == pytest.approx([10.25, 10.125], rel=0.01)
    small = ImageResult("ortho.tif", 200, 100, Detections(torch.tensor([[10.0, 10.0, 12.0, 13.0]]), torch.tensor([0.8]),
                                                       torch.ones(1, dtype=torch.int64)), raster_result.georef)
    out, check = apply_size_filter([raster_result, small], (0.3, 3.0), "flag")
    assert check.judged == 3 and check.implausible == 2
    write_results(tmp_path / "s.geojson", out, {})
    props = [f["properties"] for f in json.loads((tmp_path / "s.geojson").read_text())["features"]]
    assert [p["size_plausible"] for p in props] == [False, False, True]
    assert props[2]["ground_size_m"] == pytest.approx([1.0, 1.5], abs=0.02)


def test_oblique_photos_keep_their_position_flagged():
    steep = dict(NADIR, gimbal_pitch=-85.0)
    oblique = dict(NADIR, gimbal_pitch=-45.0)
    box = [[2700, 1800, 2720, 1830]]
    assert positions_of(nadir_photo(box, steep)).quality is None
    flagged = positions_of(nadir_photo(box, oblique))
    assert flagged.quality == "oblique" and flagged.located(1).all()
    assert positions_of(apply_camera_model(ImageResult("x", W, H, nadir_photo(box).detections, None, oblique), max_off_nadir=50)).quality is None


def test_several_outputs_from_one_run_and_unplaced_detections_named(tmp_path, shared_dir, capsys):
    photo = shared_dir / "data" / "geo" / "AWPE Pigeon Lake 2020 DJI_0005.JPG"
    if not photo.is_file():
        pytest.skip("the DJI photo is not there (SSPNET_SHARED_DIR points at the real-data folder)")
    weights = small_checkpoint(tmp_path)
    from test_cli_detect import SAMPLE

    outs = [tmp_path / "found.geojson", tmp_path / "found.gpx", tmp_path / "found.kml"]
    args = ["detect", photo, SAMPLE, "--weights", weights, "--device", "cpu", "--score-thr", "0.5"]
    for o in outs:
        args += ["--out", o]
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    assert all(o.exists() for o in outs) and "found.geojson, " in err
    assert "without a map position are not in found.gpx" in err and "bb_V0004_I0001320.jpg" in err
    gpx = gpxpy.parse(outs[1].read_text())
    placed = [f for f in json.loads(outs[0].read_text())["features"] if f["geometry"]]
    assert len(gpx.waypoints) == len(placed) > 0
    assert run_cli("report", outs[1], "--out", tmp_path / "rep", "--images", photo) == 0


TABLE = [{"min_px": 2, "max_px": 8, "recall": 0.2}, {"min_px": 8, "max_px": 12, "recall": 0.5},
         {"min_px": 12, "max_px": 20, "recall": 0.7}, {"min_px": 20, "max_px": 1e9, "recall": 0.85}]


def test_coverage_of_two_overlapping_nadir_photos(tmp_path):
    """Two nadir photos from 80 m, the second 40 m further east: each covers
    (W * GSD) x (H * GSD) metres; together 2A - overlap; the overlap gets 1 - (1 - p)^2."""
    from sspnet_cli.geo.coverage import coverage
    from sspnet_cli.outputs.coverage_file import write_coverage
    from pyproj import Geod

    east = Geod(ellps="WGS84").fwd(NADIR["lon"], NADIR["lat"], 90.0, 40.0)
    second = dict(NADIR, lon=east[0], lat=east[1])
    photos = [nadir_photo([[10, 10, 20, 30]]), nadir_photo([[10, 10, 20, 30]], second, "DJI_0101.JPG")]
    cov = coverage(photos, TABLE)
    gsd = 80.0 / F
    width, height = W * gsd, H * gsd
    assert cov.frames[0].gsd_m == pytest.approx(gsd, rel=0.01)
    person = (0.5 * 1.7) ** 0.5 / gsd  # about 42 px
    assert cov.frames[0].person_px == pytest.approx(person, rel=0.01) and cov.frames[0].pod == 0.85
    union_ha = (2 * width * height - (width - 40.0) * height) / 1e4
    assert cov.total_area_ha == pytest.approx(union_ha, rel=0.01)
    bands = {b["name"]: b for b in cov.bands}
    assert set(bands) == {"high"}  # 0.85 alone and 0.9775 in the overlap: both >= 0.8
    assert bands["high"]["area_ha"] == pytest.approx(union_ha, rel=0.01)
    lower = coverage(photos, [dict(r, recall=0.6) for r in TABLE])  # 0.6 alone, 0.84 where they overlap
    bands = {b["name"]: b["area_ha"] for b in lower.bands}
    assert bands["high"] == pytest.approx((width - 40.0) * height / 1e4, rel=0.01)
    assert bands["medium"] == pytest.approx(2 * 40.0 * height / 1e4, rel=0.01)
    write_coverage(tmp_path / "c.geojson", lower)
    doc = json.loads((tmp_path / "c.geojson").read_text())
    kinds = [f["properties"]["kind"] for f in doc["features"]]
    assert kinds.count("frame") == 2 and kinds.count("pod_band") == 2
    write_coverage(tmp_path / "c.kml", lower)
    assert ET.parse(tmp_path / "c.kml").getroot().tag.endswith("kml")


def test_the_report_overview_draws_the_pod_bands(tmp_path):
    from pyproj import Geod

    from sspnet_cli.geo.coverage import coverage
    from sspnet_cli.outputs.report import write_report

    east = Geod(ellps="WGS84").fwd(NADIR["lon"], NADIR["lat"], 90.0, 40.0)
    photos = [nadir_photo([[10, 10, 20, 30]]), nadir_photo([[10, 10, 20, 30]], dict(NADIR, lon=east[0], lat=east[1]), "DJI_0101.JPG")]
    cov = coverage(photos, [dict(r, recall=0.6) for r in TABLE])
    write_report(tmp_path / "rep", photos, {}, 0.3, 100, coverage_bands=cov.bands, open_image=lambda r: (_ for _ in ()).throw(OSError("no pixels")))
    page = (tmp_path / "rep" / "index.html").read_text()
    assert 'class="pod-high"' in page and 'class="pod-medium"' in page and "ha</title>" in page
