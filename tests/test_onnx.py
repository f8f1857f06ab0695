"""`sspnet export --format onnx` and `detect --backend onnxruntime`: the export runs in
onnxruntime and gives the torch model's detections."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import run_cli, small_checkpoint

ort = pytest.importorskip("onnxruntime")

from sspnet_cli.inference.engine import Detector  # noqa: E402
from sspnet_cli.inference.onnx import onnx_paths  # noqa: E402
from sspnet_cli.model.checkpoint import load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "bb_V0004_I0001320.jpg"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    weights = small_checkpoint(folder)
    out = folder / "model.onnx"
    assert run_cli("export", "--weights", weights, "--out", out) == 0
    return weights, out


def test_the_export_writes_two_graphs_and_a_sidecar(exported):
    weights, out = exported
    dense, rcnn, side = onnx_paths(out)
    assert dense.is_file() and rcnn.is_file()
    sidecar = json.loads(side.read_text())
    assert sidecar["format"] == "sspnet-onnx" and sidecar["input"]["scale"] == "0-255"
    assert len(sidecar["anchors"]["base_xyxy"]["p2"]) == 12 and sidecar["anchors"]["strides"] == [4, 8, 16, 32, 64]
    assert sidecar["roi"]["soft_nms"]["iou"] == 0.3 and sidecar["model_config"]["neck"] == "sspnet"
    # the dense graph alone, in plain onnxruntime, against the torch model's own layers
    model, _ = load_model(weights)
    image = torch.rand(1, 3, 512, 640) * 255
    session = ort.InferenceSession(str(dense), providers=["CPUExecutionProvider"])
    outs = dict(zip(sidecar["outputs"], session.run(None, {"image": image.numpy()})))
    with torch.no_grad():
        levels, attention = model.features(model._normalise(image / 255))  # floats in [0, 1] there
    for name, ref in zip(("p2", "p3", "p4", "p5", "p6", "attention_p2"), levels + attention[:1]):
        ref = ref.numpy()
        assert np.abs(outs[name] - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), name  # float32 noise
    assert outs["objectness_p2"].shape == (1, 12, 128, 160)


def test_onnxruntime_gives_the_torch_detections(exported, tmp_path):
    weights, out = exported
    by_torch = Detector(weights, device="cpu", score_thr=0.05).detect(SAMPLE).detections
    by_ort = Detector(out, device="cpu", score_thr=0.05).detect(SAMPLE).detections
    assert len(by_torch) > 10 and abs(len(by_ort) - len(by_torch)) <= max(2, len(by_torch) // 100)
    # every torch detection has its twin: box within 0.5 px, score within 1e-3
    d = (by_torch.boxes[:, None, :] - by_ort.boxes[None, :, :]).abs().amax(-1)
    twin = d.argmin(1)
    close = (d.min(1).values <= 0.5) & ((by_torch.scores - by_ort.scores[twin]).abs() <= 1e-3)
    assert float(close.float().mean()) >= 0.99
    # the CLI: an .onnx picks the onnxruntime backend, a checkpoint can be exported for the run
    assert run_cli("detect", SAMPLE, "--weights", out, "--out", tmp_path / "a.csv", "--device", "cpu") == 0
    assert run_cli("detect", SAMPLE, "--weights", weights, "--backend", "onnxruntime", "--out", tmp_path / "b.csv", "--device", "cpu") == 0
    assert (tmp_path / "a.csv").read_text().count("\n") == (tmp_path / "b.csv").read_text().count("\n")


def test_wrong_backend_requests_are_one_line(exported, tmp_path, capsys):
    weights, out = exported
    assert run_cli("detect", SAMPLE, "--weights", out, "--backend", "torch", "--out", tmp_path / "a.csv") == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--backend", "tensorrt", "--out", tmp_path / "a.csv") == 2
    assert run_cli("export", "--weights", weights, "--out", tmp_path / "m.trt") == 2
    err = capsys.readouterr().err
    assert "--backend onnxruntime" in err and "unknown backend" in err and "*.onnx" in err
