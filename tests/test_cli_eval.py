"""``sspnet eval``: a given detections file against GT, and a model on a dataset split."""
import json

import pytest

from cli_helpers import run_cli, small_checkpoint
from sspnet_cli.data import open_dataset, write_synthetic_dataset
from sspnet_cli.evaluation import METRIC_KEYS


def test_gt_and_detections_files(tmp_path, capsys):
    root = write_synthetic_dataset(tmp_path / "ds", layout="tinyperson", splits={"test": 3}, size=(320, 256), seed=1)
    gt_path = open_dataset(root, split="test").annotations
    gt = json.loads(gt_path.read_text())
    dets = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.9, "category_id": 1} for a in gt["annotations"] if not a.get("ignore")]
    dets_path = tmp_path / "dets.json"
    dets_path.write_text(json.dumps(dets))
    out = tmp_path / "metrics.json"
    assert run_cli("eval", "--gt", gt_path, "--detections", dets_path, "--out", out, "--plot", tmp_path / "plots") == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) == set(METRIC_KEYS)
    assert metrics["AP50_all"] == pytest.approx(100.0) and metrics["MR50_all"] == pytest.approx(0.0)
    assert (tmp_path / "plots" / "precision_recall.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "Average precision" in printed and "miss rate" in printed and "100.00" in printed


def test_model_on_a_dataset_split_and_the_evaluate_alias(tmp_path):
    root = write_synthetic_dataset(tmp_path / "ds", layout="yolo", splits={"test": 2}, size=(320, 256), seed=2)
    weights = small_checkpoint(tmp_path)
    out = tmp_path / "m.json"
    assert run_cli("evaluate", "--data", root, "--split", "test", "--weights", weights, "--device", "cpu", "--out", out) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) == set(METRIC_KEYS)  # an untrained model: numbers are low but defined
    assert metrics["MR50_all"] is not None


def test_usage_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("eval", "--split", "test") == 2  # no --data and no ./data dataset
    assert run_cli("eval", "--gt", tmp_path / "x.json") == 2  # --gt without --detections
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run_cli("eval", "--gt", bad, "--detections", bad) == 2


def test_saved_detections_give_the_same_metrics_through_gt_and_detections(tmp_path):
    root = write_synthetic_dataset(tmp_path / "ds", layout="tinyperson", splits={"test": 2}, size=(320, 256), seed=3)
    weights = small_checkpoint(tmp_path)
    saved, first, second = tmp_path / "dets.json", tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli("eval", "--data", root, "--weights", weights, "--device", "cpu", "--out", first, "--save-detections", saved) == 0
    records = json.loads(saved.read_text())
    assert records and {"image_id", "bbox", "score", "category_id"} <= set(records[0])
    gt = open_dataset(root, split="test").annotations
    assert run_cli("eval", "--gt", gt, "--detections", saved, "--out", second) == 0
    assert json.loads(first.read_text()) == json.loads(second.read_text())
    assert run_cli("eval", "--gt", gt, "--detections", saved, "--save-detections", tmp_path / "c.json") == 2
