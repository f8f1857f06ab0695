"""``sspnet detect`` with what it does beside the results file: --report, --heatmaps (into the
report or --save-vis), and the camera model options for drone photos."""
import json
import re
from pathlib import Path

import cv2
import pytest

from cli_helpers import run_cli, small_checkpoint
from test_camera_metadata import DJI, dji_packet, write_photo

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "bb_V0004_I0001320.jpg"


@pytest.fixture
def weights(tmp_path):
    return small_checkpoint(tmp_path)


def test_report_with_heatmaps_from_the_same_run(tmp_path, weights):
    out, report = tmp_path / "out.geojson", tmp_path / "report"
    code = run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--device", "cpu",
                   "--score-thr", "0.05", "--report", report, "--report-thr", "0.05", "--report-max", "7", "--heatmaps")
    assert code == 0
    html = (report / "index.html").read_text(encoding="utf-8")
    detections = len(json.loads(out.read_text())["features"])
    assert detections > 7  # the untrained test model reports many boxes
    assert len(re.findall(r"data-score=", html)) == 7
    pngs = sorted(p.name for p in report.rglob("*attention*.png"))
    assert any("combined" in n for n in pngs) and any("P2" in n for n in pngs)
    heat = cv2.imread(str(next(report.rglob("*attention_combined.png"))))
    assert heat.shape[:2] == (990, 1760)


def test_heatmaps_into_save_vis(tmp_path, weights):
    vis = tmp_path / "vis"
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", tmp_path / "o.csv", "--device", "cpu",
                   "--save-vis", vis, "--heatmaps") == 0
    names = sorted(p.name for p in vis.iterdir())
    assert "bb_V0004_I0001320.jpg" in names
    assert "bb_V0004_I0001320_attention_combined.png" in names
    assert sum("_attention_P" in n for n in names) == 4  # P2..P5


def test_heatmaps_of_an_fpn_model_say_there_are_none(tmp_path, capsys):
    fpn = small_checkpoint(tmp_path, neck="fpn")
    vis = tmp_path / "vis"
    assert run_cli("detect", SAMPLE, "--weights", fpn, "--out", tmp_path / "o.csv", "--device", "cpu",
                   "--save-vis", vis, "--heatmaps") == 0
    assert "FPN neck has no attention maps" in capsys.readouterr().err
    assert not list(vis.glob("*attention*"))
    report = tmp_path / "report"
    assert run_cli("detect", SAMPLE, "--weights", fpn, "--out", tmp_path / "o2.csv", "--device", "cpu",
                   "--report", report, "--heatmaps") == 0
    assert "the model produced no attention maps" in (report / "index.html").read_text(encoding="utf-8")


def test_option_mistakes_exit_2_before_any_work(tmp_path, weights, capsys):
    out = tmp_path / "o.csv"
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--heatmaps") == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--report", tmp_path / "r", "--report-thr", "1.5") == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--ground-elevation", "10", "--dem", SAMPLE) == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--no-camera-model", "--ground-elevation", "10") == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--dem", tmp_path / "missing.tif") == 2
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--report", busy) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists()
    assert "--heatmaps draws into --report or --save-vis" in err


def test_camera_model_places_photo_detections_and_can_be_turned_off(tmp_path, weights):
    photo = tmp_path / "DJI_0001.JPG"
    write_photo(photo, dji_packet(DJI))
    on, off, low = tmp_path / "on.geojson", tmp_path / "off.geojson", tmp_path / "low.geojson"
    common = ("--weights", weights, "--device", "cpu", "--score-thr", "0.05")
    assert run_cli("detect", photo, "--out", on, *common) == 0
    assert run_cli("detect", photo, "--out", off, *common, "--no-camera-model") == 0
    # ground 50 m higher than the default (take-off ground 430.25 m): the camera is closer to it
    assert run_cli("detect", photo, "--out", low, *common, "--ground-elevation", "480.25") == 0
    placed, pixel, closer = (json.loads(p.read_text()) for p in (on, off, low))
    assert placed["sspnet:coordinates"] == "wgs84" and pixel["sspnet:coordinates"] == "pixel"
    f_on, f_off, f_low = placed["features"][0], pixel["features"][0], closer["features"][0]
    assert f_on["properties"]["position_source"] == "camera" and f_on["properties"]["position_error_m"] > 0
    assert f_off["properties"]["position_source"] == "pixel"
    assert f_on["properties"]["pixel_bbox"] == f_off["properties"]["pixel_bbox"] == f_low["properties"]["pixel_bbox"]

    def width(feature):
        xs = [p[0] for p in feature["geometry"]["coordinates"][0]]
        return max(xs) - min(xs)

    assert width(f_low) == pytest.approx(width(f_on) * 0.5, rel=0.02)


def test_report_reads_the_parts_of_an_unfinished_or_kept_run(tmp_path, weights, capsys):
    images = sorted((REPO / "samples").glob("*.jpg"))[:1]
    out = tmp_path / "run.csv"
    assert run_cli("detect", *images, "--weights", weights, "--out", out, "--device", "cpu", "--score-thr", "0.05",
                   "--keep-parts", "--save-vis", tmp_path / "vis", "--heatmaps") == 0
    parts = tmp_path / "run.csv.parts"
    assert parts.is_dir()
    rows = out.read_text().count("\n") - 1

    # results file and parts: the report has the file's detections and the parts' heatmaps
    assert run_cli("report", out, "--out", tmp_path / "r1", "--report-thr", "0.05", "--report-max", "100000") == 0
    html = (tmp_path / "r1" / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r"data-score=", html)) == rows
    assert list((tmp_path / "r1").rglob("*attention_combined.png"))

    # the run "never finished": no results file, only its parts
    out.unlink()
    assert run_cli("report", out, "--out", tmp_path / "r2", "--report-thr", "0.05", "--report-max", "100000") == 0
    html2 = (tmp_path / "r2" / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r"data-score=", html2)) == rows
    assert "has not written its results: 1 image(s) finished" in capsys.readouterr().err
    assert run_cli("report", parts, "--out", tmp_path / "r3", "--report-thr", "0.05", "--report-max", "100000") == 0
    assert len(re.findall(r"data-score=", (tmp_path / "r3" / "index.html").read_text(encoding="utf-8"))) == rows
