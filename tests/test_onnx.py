"""`sspnet export --format onnx` and `detect --backend onnxruntime`: the export runs in
onnxruntime and gives the torch model's detections."""
import json
from pathlib import Path

import cv2
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


def test_onnxruntime_runs_the_up_sampled_and_mirrored_test_like_torch(exported):
    """Test scales 1,1.5, each also mirrored, in onnxruntime: the graphs take any size."""
    weights, out = exported
    frame = np.ascontiguousarray(cv2.imread(str(SAMPLE))[:512, :640, ::-1])
    by_torch = Detector(weights, device="cpu", score_thr=0.05, scales=(1.0, 1.5), flip=True).detect(frame).detections
    by_ort = Detector(out, device="cpu", score_thr=0.05, scales=(1.0, 1.5), flip=True).detect(frame).detections
    assert len(by_torch) > 5 and abs(len(by_ort) - len(by_torch)) <= max(2, len(by_torch) // 100)
    d = (by_torch.boxes[:, None, :] - by_ort.boxes[None, :, :]).abs().amax(-1)
    twin = d.argmin(1)
    close = (d.min(1).values <= 0.5) & ((by_torch.scores - by_ort.scores[twin]).abs() <= 1e-3)
    assert float(close.float().mean()) >= 0.99


def test_wrong_backend_requests_are_one_line(exported, tmp_path, capsys):
    weights, out = exported
    assert run_cli("detect", SAMPLE, "--weights", out, "--backend", "torch", "--out", tmp_path / "a.csv") == 2
    assert run_cli("detect", SAMPLE, "--weights", weights, "--backend", "tensorrt", "--out", tmp_path / "a.csv") == 2
    assert run_cli("export", "--weights", weights, "--out", tmp_path / "m.trt") == 2
    err = capsys.readouterr().err
    assert "--backend onnxruntime" in err and "unknown backend" in err and "*.onnx" in err


@pytest.mark.auto_onnx
def test_auto_runs_a_checkpoint_in_onnxruntime_on_the_cpu_and_keeps_the_export(exported, tmp_path, monkeypatch):
    import sspnet_cli.inference.onnx as onnx_module
    from sspnet_cli.inference import engine

    weights, out = exported
    monkeypatch.setenv("SSPNET_CACHE", str(tmp_path / "cache"))
    first = Detector(weights, device="cpu", score_thr=0.05)
    assert first.backend == "onnxruntime"
    kept = list((tmp_path / "cache" / "onnx").glob("*/model.onnx"))
    assert len(kept) == 1 and kept[0].with_suffix(".json").is_file() and kept[0].with_suffix(".rcnn.onnx").is_file()
    assert not [p for p in (tmp_path / "cache" / "onnx").iterdir() if p.name.startswith(".export-")]  # no staging left

    def no_export(*args, **kwargs):
        raise AssertionError("the kept export should have been used")

    monkeypatch.setattr(onnx_module, "export_onnx", no_export)
    again = Detector(weights, device="cpu", score_thr=0.05)
    assert again.backend == "onnxruntime"
    a, b = first.detect(SAMPLE).detections, again.detect(SAMPLE).detections
    explicit = Detector(out, device="cpu", score_thr=0.05).detect(SAMPLE).detections
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.boxes, explicit.boxes)
    # torch stays where asked, and on CUDA-less machines without onnxruntime auto means torch
    assert Detector(weights, device="cpu", backend="torch").backend == "torch"
    monkeypatch.setattr(engine, "onnxruntime_usable", lambda: False)
    assert Detector(weights, device="cpu").backend == "torch"


@pytest.mark.auto_onnx
def test_auto_falls_back_to_torch_where_the_export_cannot_be_made(tmp_path, monkeypatch):
    from sspnet_cli.config import ModelConfig, RoIConfig
    from sspnet_cli.inference import engine
    from sspnet_cli.model.build import build_from_config
    from sspnet_cli.model.checkpoint import save_checkpoint

    cascade = tmp_path / "cascade.pt"
    cfg = ModelConfig(detector="cascade_rcnn", backbone="resnet18", backbone_norm="bn", frozen_stages=0, neck_channels=32, roi=RoIConfig(fc_dim=64))
    save_checkpoint(cascade, build_from_config(cfg))
    monkeypatch.setenv("SSPNET_CACHE", str(tmp_path / "cache"))
    assert Detector(cascade, device="cpu").backend == "torch"  # only Faster R-CNN checkpoints export
    # a cache that cannot be written: the export goes to a temporary folder
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("SSPNET_CACHE", str(tmp_path / "file" / "cache"))
    weights = small_checkpoint(tmp_path)
    assert Detector(weights, device="cpu").backend == "onnxruntime"
    assert engine.onnx_cache_dir() == tmp_path / "file" / "cache" / "onnx"


def test_two_lanes_give_one_lanes_detections_frame_by_frame(exported, tmp_path):
    """Two tiles at once (one onnxruntime model, its runs on two threads) change the time, not
    the results: the same detections per frame, in the order given, a bad frame in the middle
    reported (a tile's RPN outputs mixed up between the threads would show here)."""
    _, out = exported
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    frames = [SAMPLE, bad, *sorted((REPO / "samples").glob("*.jpg"))[:2]]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # two lanes of one thread: one model, its runs on the lanes' threads
    try:
        one = Detector(out, device="cpu", score_thr=0.05, lanes=1)
        two = Detector(out, device="cpu", score_thr=0.05, lanes=2)
    finally:
        torch.set_num_threads(threads)
    assert len(one._lanes) == 1 and len(two._lanes) == 2 and two._lanes[0] is two._lanes[1]
    a, b = list(one.run(frames)), list(two.run(frames))
    assert [getattr(r, "image", None) for r in a] == [getattr(r, "image", None) for r in b]
    assert [type(r).__name__ for r in b] == ["ImageResult", "Failure", "ImageResult", "ImageResult"]
    for x, y in zip(a, b):
        if hasattr(x, "detections"):
            assert len(x.detections) == len(y.detections) > 0
            assert torch.allclose(x.detections.boxes, y.detections.boxes, atol=0.5)
            assert torch.allclose(x.detections.scores, y.detections.scores, atol=1e-3)
    with pytest.raises(Exception, match="onnxruntime"):
        Detector(exported[0], device="cpu", backend="torch", lanes=2)
