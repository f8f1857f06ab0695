"""Training: the loss falls, checkpoints appear, resume is bit-exact, DDP runs, runs are safe."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli, signal_when, small_config
from sspnet_cli.config import TrainConfig
from sspnet_cli.data import write_synthetic_dataset
from sspnet_cli.errors import SSPNetError
from sspnet_cli.model.checkpoint import read_checkpoint
from sspnet_cli.training.loop import Trainer
from sspnet_cli.training.schedule import lr_factor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return write_synthetic_dataset(root / "ds", layout="tinyperson", splits={"train": 4, "valid": 1}, size=(256, 192), seed=0)


def train_cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, max_steps=None, batch_size=2, workers=0, tile=(192, 160), overlap=30, val_split=None, log_every=1, warmup_iters=2)
    base.update(kw)
    return TrainConfig(**base)


def test_lr_schedule_warmup_and_steps():
    assert lr_factor(0, 10, 5, 0.001, (2,)) == pytest.approx(0.001)
    assert lr_factor(5, 10, 5, 0.001, (2,)) == 1.0
    assert lr_factor(19, 10, 5, 0.001, (2,)) == 1.0
    assert lr_factor(20, 10, 5, 0.001, (2, 3)) == pytest.approx(0.1)
    assert lr_factor(35, 10, 5, 0.001, (2, 3)) == pytest.approx(0.01)


def test_training_lowers_the_loss_and_writes_checkpoints(tmp_path, dataset):
    run = tmp_path / "run"
    result = Trainer(dataset, run, train_cfg(epochs=4, lr=0.01, val_split="valid"), small_config(), device="cpu").run()
    assert (run / "last.pt").exists() and (run / "best.pt").exists() and (run / "config.json").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert any("val" in r and "AP50_tiny" in r["val"] for r in records)
    assert {"loss_rpn_cls", "loss_rcnn_box", "loss_att_dice", "lr", "patches_per_s"} <= set(records[0])
    best = read_checkpoint(run / "best.pt")
    assert "train_state" not in best and best["meta"]["step"] > 0
    # what `detect --coverage` needs: the recall by person size on the validation split
    table = best["meta"]["recall_by_size"]
    assert best["meta"]["recall_by_size_split"] == "valid" and [r["min_px"] for r in table] == [2.0, 8.0, 12.0, 20.0, 32.0]
    assert sum(r["people"] for r in table) > 0 and all(0.0 <= r["recall"] <= 1.0 for r in table)
    assert result.steps == 4 * json.loads((run / "config.json").read_text())["iters_per_epoch"]


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, dataset):
    cfg = dict(epochs=2, lr=0.01)
    Trainer(dataset, tmp_path / "a", train_cfg(**cfg), small_config(), device="cpu", deterministic=True).run()
    Trainer(dataset, tmp_path / "b", train_cfg(max_steps=3, **cfg), small_config(), device="cpu", deterministic=True).run()
    assert read_checkpoint(tmp_path / "b" / "last.pt")["train_state"]["step"] == 3
    # a stretch trained after the last checkpoint and lost (a killed run): logged, not kept
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "epoch": 0, "loss": 123.0}) + "\n")
    Trainer(dataset, tmp_path / "b", train_cfg(**cfg), small_config(), device="cpu", resume=tmp_path / "b" / "last.pt", deterministic=True).run()
    a = read_checkpoint(tmp_path / "a" / "last.pt")
    b = read_checkpoint(tmp_path / "b" / "last.pt")
    assert a["train_state"]["step"] == b["train_state"]["step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    logged = [[(r["step"], r["loss"]) for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines()) if "loss" in r] for run in "ab"]
    assert logged[0] == logged[1]


def test_existing_run_folder_is_refused(tmp_path, dataset):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"x")
    with pytest.raises(SSPNetError, match="already exists"):
        Trainer(dataset, tmp_path / "run", train_cfg(max_steps=1), small_config(), device="cpu").run()


def test_kmeans_anchors_go_into_the_checkpoint(tmp_path, dataset):
    Trainer(dataset, tmp_path / "k", train_cfg(max_steps=1), small_config(), device="cpu", anchors="kmeans").run()
    cfg = read_checkpoint(tmp_path / "k" / "last.pt")["config"]
    assert tuple(cfg["anchors"]["scales"]) != (1.5, 2.5, 3.7, 8.0) and len(cfg["anchors"]["scales"]) == 4


def test_cli_train_then_detect_loads_the_checkpoint(tmp_path, dataset):
    run = tmp_path / "cli-run"
    args = ["train", dataset, "--out", run, "--backbone", "resnet18", "--neck-channels", "32", "--tile", "192x160",
            "--max-steps", "2", "--device", "cpu", "--workers", "0", "--val-split", "none"]
    assert run_cli(*args) == 0
    assert run_cli(*args) == 2  # the run folder exists now
    frame = next((Path(dataset) / "train").rglob("*.jpg"))
    assert run_cli("detect", frame, "--weights", run / "last.pt", "--out", tmp_path / "d.csv", "--device", "cpu") == 0
    assert run_cli("info", "--weights", run / "best.pt", "--json") == 0


def test_two_process_ddp_smoke_run_with_gloo(tmp_path, dataset):
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "sspnet_cli", "train", str(dataset), "--out", str(run), "--backbone", "resnet18", "--neck-channels", "32",
           "--tile", "192x160", "--batch-size", "1", "--max-steps", "2", "--device", "cpu", "--workers", "0", "--val-split", "none"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["meta"]["world_size"] == 2 and ckpt["train_state"]["step"] == 2


def test_data_workers_do_not_hang(tmp_path, dataset):
    """The default --workers 2: worker processes are forked after the parent has used OpenCV's
    thread pool, which once deadlocked them (an inherited lock). Run in a child process with a
    time limit, so a hang fails the test instead of stalling the suite."""
    run = tmp_path / "workers"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = ["train", str(dataset), "--out", str(run), "--backbone", "resnet18", "--neck-channels", "32", "--tile",
            "192x160", "--max-steps", "2", "--device", "cpu", "--workers", "2", "--val-split", "none"]
    # large frames make OpenCV start its thread pool in the parent; these tiny ones would not
    script = ("import sys, cv2, numpy as np; cv2.GaussianBlur(np.zeros((3000, 3000, 3), np.uint8), (9, 9), 3); "
              "from sspnet_cli.cli.app import main; main(sys.argv[1:])")
    cmd = [sys.executable, "-c", script, *args]
    try:
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("training with 2 data workers hung")
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_checkpoint(run / "last.pt")["train_state"]["step"] == 2


def test_the_lite_preset_sets_its_widths_and_keeps_every_sspnet_part():
    from sspnet_cli.config import describe_preset, preset_config, preset_of

    lite = preset_config("lite")
    assert (lite.backbone, lite.neck, lite.neck_channels, lite.roi.fc_dim) == ("mobilenet_v2", "sspnet", 64, 256)
    assert lite.wns.enabled and lite.attention.loss == "dice+bce" and lite.anchors.scales == (1.5, 2.5, 3.7, 8.0)
    assert preset_of(lite) == "lite" and preset_of(preset_config("paper")) == "paper"
    assert preset_config("lite", neck="fpn", neck_channels=None).neck == "fpn"  # None keeps the preset's
    assert "64 channels" in describe_preset("lite") and "FC-256" in describe_preset("lite")
    with pytest.raises(SSPNetError, match="unknown model preset"):
        preset_config("huge")


def test_cli_train_lite_preset_says_how_long_the_run_takes(tmp_path, dataset, capsys):
    run = tmp_path / "lite"
    assert run_cli("train", dataset, "--out", run, "--model", "lite", "--neck-channels", "32", "--tile", "192x160",
                   "--max-steps", "2", "--device", "cpu", "--workers", "0", "--val-split", "none") == 0
    cfg = read_checkpoint(run / "last.pt")["config"]
    assert (cfg["backbone"], cfg["neck_channels"], cfg["roi"]["fc_dim"]) == ("mobilenet_v2", 32, 256)
    err = capsys.readouterr().err
    assert "first step" in err and "steps left take about" in err and "--model lite" not in err
    run2 = tmp_path / "r18"
    assert run_cli("train", dataset, "--out", run2, "--backbone", "resnet18", "--neck-channels", "256", "--tile", "192x160",
                   "--max-steps", "1", "--device", "cpu", "--workers", "0", "--val-split", "none") == 0
    assert "--model lite" in capsys.readouterr().err  # a heavy model on a CPU is pointed at the lite preset


def test_rpn_proposals_stay_fp32_under_autocast():
    """torchvision's decode casts the anchors to the deltas' dtype: in bf16 a proposal at x ~ 600
    would be a few pixels off, more than a tiny person's width."""
    from sspnet_cli.model.build import build_from_config

    torch.manual_seed(0)
    model = build_from_config(small_config()).eval()
    batch = (torch.rand(1, 3, 256, 384) * 255).to(torch.uint8)
    with torch.no_grad():
        levels, _ = model.features(model._normalise(batch))
        ref, _, _ = model.rpn(levels, [(256, 384)])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            proposals, scores, _ = model.rpn([lv.bfloat16() for lv in levels], [(256, 384)])
    assert proposals[0].dtype == torch.float32 and scores[0].dtype == torch.float32
    # the same candidates up to the bf16 head outputs
    from torchvision.ops import box_iou

    assert float(box_iou(proposals[0][:50], ref[0]).max(1).values.min()) > 0.9


def test_amp_on_the_cpu_trains_in_bf16_or_says_why_not(tmp_path, dataset, capsys):
    from sspnet_cli.training.precision import amp_dtype, cpu_has_bf16

    assert amp_dtype(torch.device("cpu")) == (torch.bfloat16 if cpu_has_bf16() else None)
    messages = []
    trainer = Trainer(dataset, tmp_path / "amp", train_cfg(max_steps=2, amp=True), small_config(), device="cpu")
    trainer._say = messages.append  # type: ignore[method-assign]
    result = trainer.run()
    assert result.steps == 2
    assert any(("bf16 autocast" in m) if cpu_has_bf16() else ("training in fp32" in m) for m in messages), messages
    state = read_checkpoint(tmp_path / "amp" / "last.pt")["state_dict"]
    assert all(v.dtype != torch.bfloat16 for v in state.values())  # the weights stay fp32


def test_empty_patches_can_join_the_training_set(tmp_path):
    """--empty-patches keeps the windows without a person (the reference skips them) and a
    batch of nothing but background still trains with finite losses."""
    root = write_synthetic_dataset(tmp_path / "ds", layout="tinyperson", splits={"train": 2}, size=(640, 192), seed=3)
    skip = Trainer(root, tmp_path / "a", train_cfg(max_steps=1), small_config(), device="cpu")
    keep = Trainer(root, tmp_path / "b", train_cfg(max_steps=1, skip_empty_patches=False), small_config(), device="cpu")
    keep.run()
    skip.run()
    assert len(keep.patches) >= len(skip.patches)
    from sspnet_cli.data import training_patches

    images = keep.train_set.images
    for im in images:
        im.boxes = im.boxes[:0]  # a frame of background only
    assert not training_patches(images, (192, 160), 30, skip_empty=True)
    assert len(training_patches(images, (192, 160), 30, skip_empty=False)) > 0
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.long)}
    model = keep.model.train()
    losses = model([torch.rand(3, 160, 192)] * 2, [empty, empty])
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_rpn_cls"] > 0
    run = tmp_path / "cli"
    assert run_cli("train", root, "--out", run, "--backbone", "resnet18", "--neck-channels", "32", "--tile", "192x160", "--empty-patches",
                   "--max-steps", "1", "--device", "cpu", "--workers", "0", "--val-split", "none") == 0
    assert json.loads((run / "config.json").read_text())["train"]["skip_empty_patches"] is False


def test_weight_ema_follows_the_average_it_promises():
    """One parameter, a known sequence: the EMA is d*ema + (1-d)*w with the ramped decay,
    integer buffers are copied, and the average never trains."""
    import math

    from sspnet_cli.training.ema import WeightEMA

    model = torch.nn.BatchNorm1d(1)
    ema = WeightEMA(model, decay=0.9, ramp=2.0)
    expected = model.weight.detach().clone()
    for step in range(1, 6):
        with torch.no_grad():
            model.weight.fill_(float(step))
        model.num_batches_tracked += 1
        ema.update(model)
        d = 0.9 * (1 - math.exp(-step / 2.0))
        expected = d * expected + (1 - d) * step
        assert torch.allclose(ema.model.weight, expected)
    assert int(ema.model.num_batches_tracked) == 5
    assert not any(p.requires_grad for p in ema.model.parameters())
    again = WeightEMA(model, decay=0.5)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 5 and again.decay == 0.9 and torch.equal(again.model.weight, ema.model.weight)
    with pytest.raises(ValueError):
        WeightEMA(model, decay=1.0)


def test_ema_is_what_best_pt_keeps_and_resumes_exactly(tmp_path, dataset):
    cfg = dict(epochs=2, lr=0.01, ema_decay=0.9, val_split="valid")
    Trainer(dataset, tmp_path / "a", train_cfg(**cfg), small_config(), device="cpu", deterministic=True).run()
    Trainer(dataset, tmp_path / "b", train_cfg(max_steps=3, **cfg), small_config(), device="cpu", deterministic=True).run()
    Trainer(dataset, tmp_path / "b", train_cfg(**cfg), small_config(), device="cpu", resume=tmp_path / "b" / "last.pt", deterministic=True).run()
    a, b = (read_checkpoint(tmp_path / run / "last.pt") for run in "ab")
    assert a["train_state"]["ema"]["updates"] == b["train_state"]["ema"]["updates"] == a["train_state"]["step"]
    for key, value in a["train_state"]["ema"]["state_dict"].items():
        assert torch.equal(value, b["train_state"]["ema"]["state_dict"][key]), key
    # best.pt holds the average, not the raw weights of last.pt, and says so
    best = read_checkpoint(tmp_path / "a" / "best.pt")
    assert best["meta"]["weights"].startswith("EMA (decay 0.9)")
    ema_state = a["train_state"]["ema"]["state_dict"] if best["meta"]["step"] == a["train_state"]["step"] else None
    if ema_state is not None:
        assert all(torch.equal(best["state_dict"][k], v) for k, v in ema_state.items())
    assert any(not torch.equal(best["state_dict"][k], v) for k, v in a["state_dict"].items() if v.is_floating_point())
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_raw" in r and "AP50_tiny" in r["val_raw"] for r in records)  # the raw weights' score, for comparison


def test_ema_can_be_switched_on_when_resuming(tmp_path, dataset, capsys):
    run = tmp_path / "run"
    Trainer(dataset, run, train_cfg(max_steps=2, epochs=1), small_config(), device="cpu").run()
    assert "ema" not in read_checkpoint(run / "last.pt")["train_state"]
    assert run_cli("train", dataset, "--out", run, "--resume", run / "last.pt", "--epochs", "1", "--ema", "0.99",
                   "--device", "cpu", "--workers", "0", "--val-split", "none") == 0
    assert "weight average (EMA, decay 0.99) starts at step 2" in capsys.readouterr().err
    state = read_checkpoint(run / "last.pt")["train_state"]
    assert state["train_config"]["ema_decay"] == 0.99 and state["ema"]["updates"] == state["step"] - 2
    # resumed again without --ema, the run keeps its average going
    Trainer(dataset, run, train_cfg(epochs=2), small_config(), device="cpu", resume=run / "last.pt").run()
    again = read_checkpoint(run / "last.pt")["train_state"]
    assert again["train_config"]["ema_decay"] == 0.99 and again["ema"]["updates"] == again["step"] - 2
    assert run_cli("train", dataset, "--out", tmp_path / "bad", "--ema", "1.5", "--device", "cpu") != 0


def test_sigterm_saves_last_pt_like_ctrl_c(tmp_path, dataset):
    """kill, systemd and batch schedulers stop a run with SIGTERM: the run keeps what it trained."""
    import signal

    run = tmp_path / "term"
    cmd = [sys.executable, "-m", "sspnet_cli", "train", str(dataset), "--out", str(run), "--backbone", "resnet18",
           "--neck-channels", "32", "--tile", "192x160", "--max-steps", "100000", "--device", "cpu", "--workers", "0",
           "--val-split", "none"]
    code, out = signal_when(cmd, tmp_path, signal.SIGTERM, lambda line: line.startswith("step "), merge_output=True)
    assert code == 130, out[-2000:]
    assert "interrupted at step" in out and "Traceback" not in out
    assert read_checkpoint(run / "last.pt")["train_state"]["step"] >= 1
