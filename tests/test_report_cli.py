"""``sspnet report``: a review report from an existing detect output, on synthetic and real frames."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli
from sspnet_cli.imagery.sources import open_source
from sspnet_cli.outputs import write_results
from sspnet_cli.outputs.report.locate import FrameFinder
from sspnet_cli.types import Detections, ImageResult
from test_report_page import ODD_NAME, check_report, entries, scene_results, text_of, write_jpeg


@pytest.fixture
def moved_run(tmp_path, monkeypatch):
    """A detect output whose frame paths were relative to a folder that is gone: the frames now
    live under tmp_path/moved, the results file under tmp_path/out."""
    monkeypatch.chdir(tmp_path)
    results = scene_results(Path("flight"))
    write_results(tmp_path / "out" / "r.json", results, {"weights": "m.pt", "options": {"tile": "640x512"}})
    (tmp_path / "flight").rename(tmp_path / "moved")
    return tmp_path


def test_report_from_json_with_images_found_by_their_path_ending(moved_run, capsys):
    code = run_cli("report", "out/r.json", "--out", "rep", "--images", "moved", "--report-thr", "0.5")
    assert code == 0, capsys.readouterr().err
    page = check_report(moved_run / "rep")
    assert [float(e["data-score"]) for e in entries(page)] == [0.95, 0.88, 0.77, 0.55]
    assert "image not available" not in text_of(page)
    assert "m.pt" in text_of(page)
    assert "wrote rep/index.html: 3 image(s), 4 detection(s)" in capsys.readouterr().err


def test_frames_not_found_are_listed_without_pictures_and_exit_1(moved_run, capsys):
    code = run_cli("report", "out/r.json", "--out", "rep")
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("warning: ") == 3 and "give --images" in err
    page = check_report(moved_run / "rep")
    assert len(entries(page)) == 6


@pytest.mark.parametrize("suffix", [".geojson", ".csv"])
def test_geojson_and_csv_outputs_make_reports_too(tmp_path, suffix, capsys):
    results = scene_results(tmp_path / "frames")
    write_results(tmp_path / f"r{suffix}", results, {"weights": "m.pt"})
    assert run_cli("report", tmp_path / f"r{suffix}", "--out", tmp_path / "rep", "--report-max", "3") == 0
    page = check_report(tmp_path / "rep")
    assert len(entries(page)) == 3
    text = text_of(page)
    assert "lists only frames with detections" in text and "left out" in text
    assert "2 images" in text  # c.jpg had no detections, so the file does not name it
    assert entries(page)[0]["data-image"].endswith(ODD_NAME)


def test_usage_errors_exit_2_and_write_nothing(tmp_path, capsys):
    results = scene_results(tmp_path / "frames")
    write_results(tmp_path / "r.json", results)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    (tmp_path / "bad.json").write_text("[1, 2")
    assert run_cli("report", tmp_path / "r.json", "--out", tmp_path / "busy") == 2
    assert run_cli("report", tmp_path / "bad.json", "--out", tmp_path / "rep") == 2
    assert run_cli("report", tmp_path / "missing.csv", "--out", tmp_path / "rep") == 2
    assert run_cli("report", tmp_path / "r.json", "--out", tmp_path / "rep", "--report-thr", "1.5") == 2
    assert run_cli("report", tmp_path / "r.json", "--out", tmp_path / "rep", "--report-max", "-1") == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "not valid JSON" in err and "no such file" in err and "--report-thr" in err
    assert not (tmp_path / "rep").exists() and (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_help_names_the_options(capsys):
    assert run_cli("report", "--help") == 0
    out = capsys.readouterr().out
    for option in ("--out", "--images", "--report-thr", "--report-max", "--bands"):
        assert option in out


def test_frame_finder_prefers_the_longest_matching_path_ending(tmp_path):
    a = write_jpeg(tmp_path / "day1" / "cam" / "x.jpg")
    b = write_jpeg(tmp_path / "day2" / "cam" / "x.jpg")
    finder = FrameFinder(tmp_path / "r.json", [str(tmp_path)])
    assert finder.find("/old/disk/day2/cam/x.jpg") == b
    assert finder.find("day1\\cam\\x.jpg") == a
    with pytest.raises(Exception, match="ambiguous"):
        finder.find("cam/x.jpg")
    with pytest.raises(Exception, match="not found"):
        finder.find("day1/cam/y.jpg")


# -- real frames -------------------------------------------------------------------------


def test_report_of_tinyperson_ground_truth(shared_dir, tmp_path, capsys):
    """Real frames: three TinyPerson-RF test frames, ground truth written as detections."""
    data = shared_dir / "data" / "tinyperson-rf"
    if not (data / "annotations" / "tiny_set_test.json").is_file():
        pytest.skip("TinyPerson-RF not in the shared data (SSPNET_SHARED_DIR points at the real-data folder)")
    gt = json.loads((data / "annotations" / "tiny_set_test.json").read_text())
    results = []
    for image in gt["images"][:3]:
        boxes = [[x, y, x + w, y + h] for a in gt["annotations"] if a["image_id"] == image["id"] and not a["ignore"]
                 for x, y, w, h in [a["bbox"]]]
        n = len(boxes)
        det = Detections(torch.tensor(boxes, dtype=torch.float32).reshape(n, 4), torch.ones(n), torch.ones(n, dtype=torch.int64))
        results.append(ImageResult(image["file_name"], image["width"], image["height"], det))
    write_results(tmp_path / "gt.json", results, {"weights": "ground truth, score 1.0"})
    code = run_cli("report", tmp_path / "gt.json", "--out", tmp_path / "rep", "--images", data / "test", "--report-max", "50")
    assert code == 0, capsys.readouterr().err
    page = check_report(tmp_path / "rep")
    total = sum(len(r.detections) for r in results)
    assert len(entries(page)) == min(50, total)
    assert len(list((tmp_path / "rep" / "overlays").iterdir())) == 3


def test_report_of_a_real_georeferenced_raster(shared_dir, tmp_path):
    """OSBS_029.tif (a real GeoTIFF, UTM 17N): the map shows its footprint and the positions."""
    tif = shared_dir / "data" / "geo" / "OSBS_029.tif"
    if not tif.is_file():
        pytest.skip("OSBS_029.tif not in the shared data (SSPNET_SHARED_DIR points at the real-data folder)")
    with (shared_dir / "data" / "geo" / "OSBS_029.csv").open() as f:
        boxes = [[float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for r in csv.DictReader(f)][:10]
    with open_source(tif) as src:
        det = Detections(torch.tensor(boxes), torch.linspace(0.95, 0.5, len(boxes)), torch.ones(len(boxes), dtype=torch.int64))
        result = ImageResult(str(tif), src.width, src.height, det, src.georef)
    write_results(tmp_path / "trees.geojson", [result], {"weights": "tree boxes, not people"})
    assert run_cli("report", tmp_path / "trees.geojson", "--out", tmp_path / "rep") == 0
    page = check_report(tmp_path / "rep")
    tags = [tag for tag, _ in page.tags]
    assert tags.count("polygon") == 1 and tags.count("circle") == 10
    lat = float(entries(page)[0]["data-lat"])
    assert lat == pytest.approx(29.69, abs=0.01)  # OSBS, Florida
