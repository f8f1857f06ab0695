"""int8: `sspnet export --int8`, `detect --precision`, and what `--precision auto` picks.

An int8 dense graph does not give fp32's detections to 0.5 px (that is not its bar: AP50-tiny on
the valid split is, benchmarks/README.md "int8"); these tests check that it is calibrated as the
sidecar says, close to fp32 layer by layer, that the shipped model in int8 still finds the sample's
people and mostly the same boxes, and that precision is chosen, recorded and refused as documented.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from torchvision.ops import box_iou

from cli_helpers import run_cli, small_checkpoint

ort = pytest.importorskip("onnxruntime")

from sspnet_cli.errors import SSPNetError  # noqa: E402
from sspnet_cli.inference import engine, jobs, quantize  # noqa: E402
from sspnet_cli.inference.engine import Detector, choose_precision  # noqa: E402
from sspnet_cli.inference.onnx import export_precision, onnx_paths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "bb_V0004_I0001320.jpg"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    weights = small_checkpoint(folder)
    fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
    assert run_cli("export", "--weights", weights, "--out", fp32) == 0
    assert run_cli("export", "--weights", weights, "--out", int8, "--int8") == 0
    return weights, fp32, int8


def _outputs(path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    names = json.loads(onnx_paths(path)[2].read_text())["outputs"]
    return dict(zip(names, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": image})))


def test_an_int8_export_is_quantised_as_its_sidecar_says_and_stays_close_to_fp32(exports):
    weights, fp32, int8 = exports
    sidecar = json.loads(onnx_paths(int8)[2].read_text())
    assert export_precision(sidecar) == "int8" and export_precision(json.loads(onnx_paths(fp32)[2].read_text())) == "fp32"
    calibration = sidecar["precision"]["calibration"]
    shipped = quantize.calibration_images()
    assert calibration["images"] == [p.name for p in shipped] and calibration["digest"] == quantize.calibration_digest(shipped)
    assert calibration["scales"] == [1.0] and sidecar["precision"]["rcnn"] == "fp32"
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size  # int8 weights
    # same inputs and outputs as the fp32 graph, every output close to it
    image = np.ascontiguousarray(cv2.imread(str(SAMPLE))[:512, :640, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
    ref, got = _outputs(fp32, image), _outputs(int8, image)
    assert ref.keys() == got.keys()
    for name in ("p2", "p5", "objectness_p2", "deltas_p3", "attention_p2"):
        assert ref[name].shape == got[name].shape
        assert np.corrcoef(ref[name].ravel(), got[name].ravel())[0, 1] > 0.95, name


def test_the_shipped_model_in_int8_finds_the_people_and_mostly_fp32s_boxes():
    views = dict(device="cpu", backend="onnxruntime", scales=(1.0,), flip=False)
    fp32 = Detector(None, precision="fp32", **views).detect(SAMPLE).detections
    int8_detector = Detector(None, precision="int8", **views)
    assert int8_detector.precision == "int8" and int8_detector.options.precision == "int8"
    assert int8_detector.runtime.startswith("onnxruntime, int8")
    int8 = int8_detector.detect(SAMPLE).detections
    gt = json.loads((REPO / "samples" / "annotations.json").read_text())
    image = next(im for im in gt["images"] if im["file_name"] == SAMPLE.name)
    people = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in
                           (a["bbox"] for a in gt["annotations"] if a["image_id"] == image["id"] and not a["ignore"])])
    found = float((box_iou(people, int8.boxes).max(dim=1).values >= 0.25).float().mean())
    assert found >= 0.12, f"int8 found {found:.0%} of the people"  # the shipped model's floor (test_default_model.py)
    twins = float((box_iou(fp32.boxes, int8.boxes).max(dim=1).values >= 0.5).float().mean())
    assert len(fp32) > 5 and twins >= 0.7, f"{twins:.0%} of fp32's boxes have an int8 twin"


@pytest.mark.auto_int8
def test_auto_picks_int8_only_with_onnxruntime_on_a_cpu_with_int8_units_and_calibration_tiles(exports, monkeypatch, tmp_path):
    weights, fp32, int8 = exports
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: True)
    assert choose_precision("auto", "onnxruntime", weights) == "int8"
    assert choose_precision("auto", "torch", weights) == "fp32"
    assert choose_precision("fp32", "onnxruntime", weights) == "fp32"
    # an export runs at its own precision
    assert choose_precision("auto", "onnxruntime", fp32) == "fp32" and choose_precision("auto", "onnxruntime", int8) == "int8"
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: False)
    assert choose_precision("auto", "onnxruntime", weights) == "fp32"
    assert choose_precision("int8", "onnxruntime", weights) == "int8"  # asked for: runs, if slowly
    monkeypatch.setattr(quantize, "cpu_has_int8_dot", lambda: True)
    monkeypatch.setattr(quantize, "CALIBRATION_DIR", tmp_path / "none")
    assert choose_precision("auto", "onnxruntime", weights) == "fp32"  # no calibration tiles installed


def test_impossible_precisions_are_one_line_errors(exports, tmp_path, capsys):
    weights, fp32, int8 = exports
    with pytest.raises(SSPNetError, match="onnxruntime backend"):
        choose_precision("int8", "torch", weights)
    with pytest.raises(SSPNetError, match="fp32 export"):
        choose_precision("int8", "onnxruntime", fp32)
    with pytest.raises(SSPNetError, match="int8 export"):
        choose_precision("fp32", "onnxruntime", int8)
    assert run_cli("detect", SAMPLE, "--weights", weights, "--backend", "torch", "--precision", "int8", "--out", tmp_path / "a.csv") == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--precision", "int4", "--out", tmp_path / "a.csv") == 2
    (tmp_path / "empty").mkdir()
    assert run_cli("export", "--weights", weights, "--out", tmp_path / "m.onnx", "--int8", "--calibration", tmp_path / "empty") == 2
    assert run_cli("export", "--weights", weights, "--out", tmp_path / "m.onnx", "--calibration", tmp_path / "empty") == 2
    err = capsys.readouterr().err
    assert "onnxruntime backend" in err and "unknown precision 'int4'" in err and "no calibration images" in err
    assert "--calibration is for --int8" in err and "Traceback" not in err
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "m.onnx").exists()


def test_own_calibration_images_are_used_and_recorded(exports, tmp_path):
    weights = exports[0]
    (tmp_path / "mine").mkdir()
    frame = cv2.imread(str(SAMPLE))
    for i, x in enumerate((0, 700)):
        cv2.imwrite(str(tmp_path / "mine" / f"tile{i}.png"), frame[:512, x : x + 640])
    out = tmp_path / "own.onnx"
    assert run_cli("export", "--weights", weights, "--out", out, "--int8", "--calibration", tmp_path / "mine") == 0
    calibration = json.loads(onnx_paths(out)[2].read_text())["precision"]["calibration"]
    assert calibration["images"] == ["tile0.png", "tile1.png"]
    assert Detector(out, device="cpu").precision == "int8"


def test_int8_and_fp32_exports_are_cached_apart_and_a_resume_keeps_to_one(exports, tmp_path, monkeypatch):
    weights = exports[0]
    monkeypatch.setenv("SSPNET_CACHE", str(tmp_path / "cache"))
    a = Detector(weights, device="cpu", backend="onnxruntime", precision="int8")
    b = Detector(weights, device="cpu", backend="onnxruntime", precision="fp32")
    kept = sorted(p.parent.name for p in (tmp_path / "cache" / "onnx").glob("*/model.onnx"))
    assert len(kept) == 2 and sum("-int8-" in name for name in kept) == 1
    assert export_precision(a.model.sidecar) == "int8" and export_precision(b.model.sidecar) == "fp32"
    assert b.options.to_dict()["precision"] == "fp32" and "precision" not in jobs.manifest_for(b)
    # part files of an fp32 run do not resume as int8 (nor the other way)
    parts = tmp_path / "out.geojson.parts"
    jobs.check_or_write_manifest(parts, jobs.manifest_for(b), resume=False)
    with pytest.raises(SSPNetError, match="precision \\('fp32' then, 'int8' now\\)"):
        jobs.check_or_write_manifest(parts, jobs.manifest_for(a), resume=True)
    jobs.check_or_write_manifest(parts, jobs.manifest_for(b), resume=True)  # the same precision resumes
    with pytest.raises(SSPNetError, match="make a new Detector"):
        a.with_options(precision="fp32")
    assert a.with_options(score_thr=0.5).precision == "int8"
