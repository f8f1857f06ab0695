"""``sspnet detect`` from the command line: formats, exit codes, bad inputs, atomic output."""
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_helpers import run_cli, small_checkpoint

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "bb_V0004_I0001320.jpg"


@pytest.fixture
def weights(tmp_path):
    return small_checkpoint(tmp_path)


def test_geojson_csv_and_json_outputs(tmp_path, weights, capsys):
    for suffix in ("geojson", "csv", "json"):
        out = tmp_path / f"out.{suffix}"
        assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--device", "cpu", "--score-thr", "0.05") == 0
        assert out.exists()
        said = capsys.readouterr().err
        # a GeoJSON of photos without positions says so, and what suits pixel work
        assert ("no input carries a map position" in said) == (suffix == "geojson")
    gj = json.loads((tmp_path / "out.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and gj["sspnet:coordinates"] == "pixel"
    assert all(f["geometry"] is None for f in gj["features"])  # never pixel numbers posing as lon/lat
    assert gj["features"], "the test model reports boxes"
    props = gj["features"][0]["properties"]
    assert props["image"].endswith("bb_V0004_I0001320.jpg") and len(props["pixel_bbox"]) == 4
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert list(rows[0])[:7] == ["image", "x1", "y1", "x2", "y2", "score", "label"]
    assert len(rows) == len(gj["features"])
    coco = json.loads((tmp_path / "out.json").read_text())
    assert coco["images"][0]["width"] == 1760 and len(coco["annotations"]) == len(rows)


def test_same_input_same_output_bytes(tmp_path, weights):
    a, b = tmp_path / "a.geojson", tmp_path / "b.geojson"
    for out in (a, b):
        assert run_cli("detect", SAMPLE, "--weights", weights, "--out", out, "--device", "cpu") == 0
    assert a.read_bytes() == b.read_bytes()


def test_folder_with_a_bad_file_exits_1_and_writes_the_rest(tmp_path, weights):
    folder = tmp_path / "flight 1"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(SAMPLE.read_bytes())
    (folder / "broken.jpg").write_text("this is text")
    (folder / "cut.jpg").write_bytes(SAMPLE.read_bytes()[:5000])
    out = tmp_path / "res.json"
    assert run_cli("detect", folder, "--weights", weights, "--out", out, "--device", "cpu") == 1
    coco = json.loads(out.read_text())
    assert [Path(im["file_name"]).name for im in coco["images"]] == ["good.jpg"]


def test_fatal_problems_exit_2_before_any_work(tmp_path, weights, capsys):
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", tmp_path / "x.txt") == 2
    assert "x.txt" in capsys.readouterr().err
    assert run_cli("detect", tmp_path / "nothing-here", "--weights", weights, "--out", tmp_path / "x.csv") == 2
    assert not (tmp_path / "x.csv").exists()
    bad = tmp_path / "random.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    assert run_cli("detect", SAMPLE, "--weights", bad, "--out", tmp_path / "y.csv") == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and "Traceback" not in err
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", tmp_path / "z.csv", "--tile", "big") == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", tmp_path / "z.csv", "--scales", "0") == 2


def test_save_vis_draws_each_image(tmp_path, weights):
    vis = tmp_path / "vis"
    assert run_cli("detect", SAMPLE, "--weights", weights, "--out", tmp_path / "o.csv", "--save-vis", vis, "--device", "cpu") == 0
    img = cv2.imread(str(vis / "bb_V0004_I0001320.jpg"))
    assert img is not None and img.shape[:2] == (990, 1760)
