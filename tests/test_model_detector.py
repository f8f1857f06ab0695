"""The whole detector: training lowers the loss, eval output obeys the reference's caps,
checkpoints round-trip and refuse what is not theirs, backbone weights load from local files."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_helpers import train_steps
from sspnet_cli.config import ModelConfig, RoIConfig
from sspnet_cli.errors import SSPNetError
from sspnet_cli.model.backbones import build_backbone
from sspnet_cli.model.build import build_from_config
from sspnet_cli.model.checkpoint import load_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def small_config(**kw) -> ModelConfig:
    """ResNet-18, 64-channel neck, trainable BN: fast enough for CPU tests."""
    base = dict(backbone="resnet18", backbone_norm="bn", frozen_stages=0, neck_channels=64, roi=RoIConfig(fc_dim=256))
    base.update(kw)
    return ModelConfig(**base)


def blob_scene(seed: int, h: int = 128, w: int = 160):
    """A textured background with a few bright person-sized blobs and their boxes."""
    g = torch.Generator().manual_seed(seed)
    img = 0.3 + 0.1 * torch.rand(3, h, w, generator=g)
    boxes = []
    for _ in range(4):
        bw, bh = [int(v) for v in torch.randint(5, 14, (2,), generator=g)]
        x = int(torch.randint(0, w - bw, (1,), generator=g))
        y = int(torch.randint(0, h - bh, (1,), generator=g))
        img[:, y : y + bh, x : x + bw] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
        boxes.append([x, y, x + bw, y + bh])
    return img, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.ones(len(boxes), dtype=torch.long)}


@pytest.mark.parametrize("neck", ["sspnet", "fpn"])
def test_a_few_training_steps_lower_the_loss(neck):
    torch.manual_seed(0)
    model = build_from_config(small_config(neck=neck)).train()
    scenes = [blob_scene(0), blob_scene(1)]
    images, targets = [s[0] for s in scenes], [s[1] for s in scenes]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    losses, totals = train_steps(model, images, targets, opt, 10)
    expected = {"loss_rpn_cls", "loss_rpn_box", "loss_rcnn_cls", "loss_rcnn_box"}
    if neck == "sspnet":
        expected |= {"loss_att_bce", "loss_att_dice"}
    assert set(losses) == expected
    assert sum(totals[-3:]) / 3 < 0.7 * sum(totals[:3]) / 3, totals


def test_training_works_on_images_without_people():
    model = build_from_config(small_config()).train()
    img, _ = blob_scene(2)
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.long)}
    losses = model([img], [empty])
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_eval_output_caps_scores_and_boxes_inside_the_patch():
    torch.manual_seed(0)
    model = build_from_config(small_config()).eval()
    # a random untrained head scores almost everything above 0.05: the 500 cap must bite
    with torch.no_grad():
        model.roi_heads.cls_score.bias.copy_(torch.tensor([-3.0, 3.0]))
        out = model([torch.rand(3, 200, 300), torch.rand(3, 120, 90)])
    assert len(out) == 2
    for det, (h, w) in zip(out, [(200, 300), (120, 90)]):
        assert 0 < len(det["boxes"]) <= 500
        assert bool((det["scores"] >= 0.05).all())
        b = det["boxes"]
        assert bool((b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all())
        assert det["labels"].unique().tolist() == [1]
    capped = build_from_config(small_config(roi=RoIConfig(fc_dim=256, detections_per_img=50))).eval()
    capped.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert len(capped([torch.rand(3, 200, 300)])[0]["boxes"]) == 50


def test_predict_batch_and_multiscale_agree_in_form():
    torch.manual_seed(0)
    model = build_from_config(small_config()).eval()
    batch = (torch.rand(2, 3, 96, 128) * 255).to(torch.uint8)
    dets, att = model.predict(batch, with_attention=True)
    assert len(dets) == 2 and len(att) == 4 and att[0].shape == (2, 1, 24, 32)
    ref = model([batch[0].float() / 255])
    assert torch.allclose(dets[0]["boxes"], ref[0]["boxes"], atol=1e-3)
    ms, _ = model.predict(batch, scales=(1.0, 2.0))
    for d in ms:
        assert len(d["boxes"]) <= 500 and bool((d["scores"] >= 0.05).all())
        assert bool((d["boxes"][:, 2] <= 128).all() and (d["boxes"][:, 3] <= 96).all())


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_from_config(small_config(neck="fpn")).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, meta={"epochs": 3, "data": "synthetic"})
    loaded, meta = load_model(path)
    assert meta == {"epochs": 3, "data": "synthetic"}
    assert loaded.cfg == model.cfg
    x = [torch.rand(3, 96, 128)]
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a[0]["boxes"], b[0]["boxes"]) and torch.equal(a[0]["scores"], b[0]["scores"])
    half = tmp_path / "half.pt"
    save_checkpoint(half, model, half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    loaded_half, _ = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded_half.parameters())


def test_checkpoint_refusals(tmp_path):
    model = build_from_config(small_config())
    good = tmp_path / "good.pt"
    save_checkpoint(good, model)
    data = torch.load(good, weights_only=True)
    # configuration says resnet34 but the weights are resnet18's: refused, one line
    data["config"]["backbone"] = "resnet34"
    torch.save(data, tmp_path / "arch.pt")
    with pytest.raises(SSPNetError, match="do not match the architecture"):
        load_model(tmp_path / "arch.pt")
    torch.save({"model": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(SSPNetError, match="not an sspnet checkpoint"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(SSPNetError, match="not a readable checkpoint"):
        load_model(tmp_path / "random.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(SSPNetError, match="empty"):
        load_model(tmp_path / "empty.pt")
    torch.save({"format": "sspnet-checkpoint", "obj": Path("x")}, tmp_path / "pickle.pt")
    with pytest.raises(SSPNetError, match="never unpickled"):
        load_model(tmp_path / "pickle.pt")
    data["config"]["neck"] = "bifpn"
    torch.save(data, tmp_path / "neck.pt")
    with pytest.raises(SSPNetError, match="unknown neck"):
        load_model(tmp_path / "neck.pt")


def test_resnet_weights_load_from_a_local_torchvision_file(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-local.pth"
    torch.save(ref.state_dict(), path)  # includes fc.*, which is ignored
    bb = build_backbone("resnet18", weights=path)
    assert torch.equal(bb.stages[1][0].conv1.weight, ref.layer2[0].conv1.weight)
    assert "resnet18-local.pth" in bb.init_source
    with pytest.raises(SSPNetError, match="do not fit backbone resnet50"):
        build_backbone("resnet50", weights=path)
    with pytest.raises(SSPNetError, match="not found"):
        build_backbone("resnet18", weights=tmp_path / "missing.pth")


def test_info_json_describes_the_shipped_model_and_the_paper_preset():
    def info(*args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "sspnet_cli", "info", "--json", *args], capture_output=True, text=True, cwd=REPO, check=True)
        return json.loads(out.stdout)

    shipped = info()  # without --weights: the model in weights/, with what it was chosen to run at
    assert shipped["backbone"]["name"] == "mobilenet_v2" and shipped["neck"]["name"].startswith("SSPNet")
    from sspnet_cli.model.checkpoint import read_checkpoint

    meta = read_checkpoint(REPO / "weights" / "sspnet_default.pt")["meta"]
    assert shipped["test_scales"] == meta["test_scales"] and shipped["test_flip"] is meta["test_flip"]
    assert shipped["checkpoint"]["training_command"].startswith("sspnet train")
    desc = info("--model", "paper")
    assert desc["detector"] == "Faster R-CNN" and desc["backbone"]["name"] == "resnet50"
    assert desc["neck"]["name"].startswith("SSPNet")
    p = desc["parameters"]
    assert p["total"] == p["backbone"] + p["neck"] + p["rpn"] + p["roi_head"] > 40_000_000
    assert desc["anchors"]["per_location"] == 12
    assert [lv["stride"] for lv in desc["pyramid_levels"]] == [4, 8, 16, 32, 64]
