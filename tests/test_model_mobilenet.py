"""The ImageNet-pretrained MobileNetV2 backbone shipped in weights/: strict loading, stage strides
and channels, refusal of wrong or corrupted files, and where `info` says its weights came from."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli
from sspnet_cli.config import ModelConfig
from sspnet_cli.errors import SSPNetError
from sspnet_cli.model.backbones import MOBILENET_V2_FILE, MOBILENET_V2_SHA256, build_backbone, sha256_of
from sspnet_cli.model.build import build_from_config
from sspnet_cli.model.checkpoint import save_checkpoint
from sspnet_cli.model.summary import describe
from sspnet_cli.training.loop import resolve_backbone_init

SHIPPED = Path(__file__).resolve().parents[1] / "weights" / MOBILENET_V2_FILE


def test_the_shipped_file_is_the_documented_one_and_loads_strictly():
    assert sha256_of(SHIPPED) == MOBILENET_V2_SHA256
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    backbone = build_backbone("mobilenet_v2", weights=SHIPPED)
    # every tensor of the file lands in the backbone unchanged (features.N... -> stage order)
    own = dict(torch.nn.Sequential(*[m for stage in backbone.stages for m in stage]).state_dict())
    keys = {k[len("features."):] if k.startswith("features.") else k for k in state}
    assert keys == set(own)
    for key, value in state.items():
        assert torch.equal(own[key[len("features."):] if key.startswith("features.") else key], value)
    assert backbone.init_source.startswith(MOBILENET_V2_FILE)


@pytest.mark.parametrize("size", [(512, 640), (501, 637), (97, 33)])
def test_four_feature_maps_have_strides_4_8_16_32_and_the_stage_channels(size):
    h, w = size
    backbone = build_backbone("mobilenet_v2").eval()
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, h, w))
    assert [f.shape[1] for f in feats] == [24, 32, 96, 1280]
    for f, stride in zip(feats, (4, 8, 16, 32)):
        assert f.shape[2:] == (-(-h // stride), -(-w // stride))


def test_the_whole_detector_runs_on_mobilenet_features():
    model = build_from_config(ModelConfig(backbone="mobilenet_v2", neck_channels=32)).eval()
    dets, att = model.predict((torch.rand(1, 3, 512, 640) * 255).to(torch.uint8), with_attention=True)
    assert dets[0]["boxes"].shape[1] == 4 and len(att) == 4


def test_a_corrupted_copy_is_refused_with_one_line(tmp_path):
    bad = tmp_path / MOBILENET_V2_FILE
    data = bytearray(SHIPPED.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(SSPNetError) as exc:
        build_backbone("mobilenet_v2", weights=bad)
    assert "does not match the known MobileNetV2 file" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("kind", ["random", "resnet", "truncated"])
def test_wrong_files_are_refused_with_one_line(tmp_path, kind):
    path = tmp_path / "other.pt"
    if kind == "random":
        path.write_bytes(torch.randint(0, 255, (2048,), dtype=torch.uint8).numpy().tobytes())
    elif kind == "resnet":
        torch.save(build_backbone("resnet18").state_dict(), path)
    else:
        path.write_bytes(SHIPPED.read_bytes()[:5000])
    with pytest.raises(SSPNetError) as exc:
        build_backbone("mobilenet_v2", weights=path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_train_starts_mobilenet_from_the_shipped_file_unless_told_otherwise(tmp_path):
    cfg, path, note = resolve_backbone_init(ModelConfig(backbone="mobilenet_v2"), None)
    assert path == SHIPPED and MOBILENET_V2_FILE in note and cfg.backbone_norm == "frozen_bn"
    cfg, path, note = resolve_backbone_init(ModelConfig(backbone="mobilenet_v2"), "none")
    assert path is None and "from scratch" in note and cfg.backbone_norm == "bn" and cfg.frozen_stages == 0
    copy = tmp_path / "mine.pt"
    shutil.copyfile(SHIPPED, copy)
    assert resolve_backbone_init(ModelConfig(backbone="mobilenet_v2"), str(copy))[1] == copy
    with pytest.raises(SSPNetError):
        resolve_backbone_init(ModelConfig(backbone="mobilenet_v2"), str(tmp_path / "missing.pt"))


def test_info_shows_the_backbone_its_size_and_where_its_weights_came_from(tmp_path, capsys):
    model = build_from_config(ModelConfig(backbone="mobilenet_v2", neck_channels=32))
    note = f"mobilenet_v2 from {MOBILENET_V2_FILE}"
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, meta={"backbone_init": note})
    assert describe(model, {"backbone_init": note})["backbone"]["initial_weights"] == note
    assert describe(model, {})["backbone"]["initial_weights"] == "not recorded in the checkpoint"
    assert run_cli("info", "--weights", ckpt, "--json") == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["backbone"]["name"] == "mobilenet_v2" and desc["backbone"]["initial_weights"] == note
    assert desc["parameters"]["backbone"] == sum(p.numel() for p in model.backbone.parameters())
    assert run_cli("info", "--weights", ckpt) == 0
    assert f"initial weights: {note}" in capsys.readouterr().out


def test_the_person_detector_start_carries_its_own_normalisation(shared_dir, tmp_path):
    from sspnet_cli.model.backbones import MOBILENET_V2_PERSON_FILE

    person = shared_dir / "weights" / MOBILENET_V2_PERSON_FILE
    if not person.is_file():
        pytest.skip("the SSDLite person backbone is not in the shared folder (SSPNET_SHARED_DIR points at the real-data folder)")
    cfg, path, note = resolve_backbone_init(ModelConfig(backbone="mobilenet_v2"), str(person))
    assert path == person and cfg.pixel_mean == (127.5,) * 3 and cfg.pixel_std == (127.5,) * 3
    assert "SSDLite person detector" in note
    model = build_from_config(cfg, str(path))
    ckpt = tmp_path / "p.pt"
    save_checkpoint(ckpt, model)
    from sspnet_cli.model.checkpoint import load_model

    loaded, _ = load_model(ckpt)
    assert loaded.cfg.pixel_mean == (127.5,) * 3  # the checkpoint carries it to detect and eval
    assert torch.allclose(loaded.pixel_std.flatten(), torch.full((3,), 127.5))
    # ImageNet stays the default normalisation
    assert resolve_backbone_init(ModelConfig(backbone="mobilenet_v2"), None)[0].pixel_mean == (123.675, 116.28, 103.53)
