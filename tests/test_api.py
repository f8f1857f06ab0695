"""The Python API is the CLI's engine: the same job gives the same bytes, and the CLI only speaks."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli, small_checkpoint
from sspnet_cli import api
from sspnet_cli.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "bb_V0004_I0001320.jpg"


def _inputs(tmp_path, shared_dir):
    geo = shared_dir / "data" / "geo"
    if not (geo / "OSBS_029.tif").is_file():
        pytest.skip("the shared GeoTIFF and DJI photo are not there (SSPNET_SHARED_DIR points at the real-data folder)")
    folder = tmp_path / "in"
    folder.mkdir()
    for src in (SAMPLE, geo / "OSBS_029.tif", geo / "AWPE Pigeon Lake 2020 DJI_0005.JPG"):
        shutil.copyfile(src, folder / src.name)
    return sorted(str(p) for p in folder.iterdir())


def test_api_detect_writes_the_same_bytes_as_the_cli(tmp_path, shared_dir):
    """A sample frame, a georeferenced GeoTIFF and a DJI photo placed by its camera model."""
    weights = small_checkpoint(tmp_path)
    inputs = _inputs(tmp_path, shared_dir)
    suffixes = (".geojson", ".csv")  # both from one run each: the slow part is the model
    by_cli, by_api = [tmp_path / f"cli{s}" for s in suffixes], [tmp_path / f"api{s}" for s in suffixes]
    assert run_cli("detect", *inputs, "--weights", weights, "--out", by_cli[0], "--out", by_cli[1], "--device", "cpu") == 0
    summary = api.detect(inputs, by_api, weights=weights, device="cpu")
    assert len(summary.results) == 3 and summary.exit_code == 0
    for cli_file, api_file in zip(by_cli, by_api):
        assert api_file.read_bytes() == cli_file.read_bytes()
    sources = [f["properties"]["position_source"] for f in json.loads(by_api[0].read_text())["features"]]
    assert {"raster", "camera"} <= set(sources)  # both kinds of placement were exercised


def test_a_report_from_the_parts_places_photos_as_the_output_does(tmp_path, shared_dir):
    """The part folder records --ground-elevation (and --dem, --no-camera-model), so a report
    built from it while the run is unfinished puts detections where the final output will."""
    weights = small_checkpoint(tmp_path)
    photo = [p for p in _inputs(tmp_path, shared_dir) if p.endswith(".JPG")]
    out = tmp_path / "o.geojson"
    summary = api.detect(photo, out, weights=weights, device="cpu", ground_elevation=300.0, keep_parts=True)
    assert summary.parts is not None and summary.detections > 0
    final = [f["geometry"]["coordinates"] for f in json.loads(out.read_text())["features"]]
    out.unlink()  # as if the run had not written its output yet
    done = api.report(out, tmp_path / "rep")
    placed = done.loaded.results[0]
    assert placed.ground is not None and placed.ground.source == "camera"
    assert len(final) == len(placed.ground.rings)
    for ring, coords in zip(placed.ground.rings, final):
        assert np.allclose(np.asarray(ring), np.asarray(coords[0]), atol=1e-7, rtol=0)  # the file keeps 8 decimals


def test_train_from_python_uses_the_clis_lr_steps():
    assert TrainConfig(epochs=24).resolved_lr_steps() == (16, 22)
    assert TrainConfig().resolved_lr_steps() == (8, 11)
    assert TrainConfig(epochs=7).resolved_lr_steps() == (5, 6)
    assert TrainConfig(epochs=10, lr_steps=(8,)).resolved_lr_steps() == (8,)


def test_a_frame_with_a_backslash_in_its_name_is_found(tmp_path):
    weights = small_checkpoint(tmp_path)
    frame = tmp_path / "flight" / "site\\a.jpg"  # one file name, legal on Linux and macOS
    frame.parent.mkdir()
    shutil.copyfile(SAMPLE, frame)
    out = tmp_path / "d.json"
    assert run_cli("detect", frame, "--weights", weights, "--out", out, "--device", "cpu") == 0
    moved = tmp_path / "card"
    shutil.copytree(frame.parent, moved)
    assert run_cli("report", out, "--out", tmp_path / "rep", "--images", moved) == 0
    # a results file written on Windows still matches by its components
    data = json.loads(out.read_text())
    data["images"][0]["file_name"] = "C:\\flights\\day1\\" + "other.jpg"
    shutil.copyfile(SAMPLE, moved / "other.jpg")
    win = tmp_path / "win.json"
    win.write_text(json.dumps(data))
    assert run_cli("report", win, "--out", tmp_path / "rep2", "--images", moved) == 0


def test_the_cli_answers_help_without_importing_torch():
    code = "import sys; from sspnet_cli.cli.app import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n" \
           "print(sorted(m for m in ('torch', 'cv2', 'rasterio') if m in sys.modules))"
    for args in (["--help"], ["detect", "--help"], ["train", "--help"], ["detect", "x.jpg", "--scroe-thr", "1"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.stdout.strip().splitlines()[-1] == "[]", (args, done.stdout[-300:], done.stderr[-300:])


def test_the_package_exports_the_api_lazily():
    code = "import sys, sspnet_cli; print('torch' in sys.modules); print(sspnet_cli.detect is __import__('sspnet_cli.api').api.detect)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr[-500:]
