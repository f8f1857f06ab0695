"""The shipped default model: the file is the one its card describes, and it finds people."""
import json
import re
from pathlib import Path

import torch
from torchvision.ops import box_iou

from sspnet_cli.config import preset_of
from sspnet_cli.inference.engine import Detector
from sspnet_cli.inference.weights import find_default_weights
from sspnet_cli.model.backbones import sha256_of
from sspnet_cli.model.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights" / "sspnet_default.pt"
CARD = REPO / "weights" / "README.md"
SAMPLE = "bb_V0004_I0001320.jpg"  # 39 annotated people, a test-split frame never trained on
#: the share of the sample's people the shipped model must find at IoU 0.25 and score >= 0.3
#: (the card's figure for this frame, less a margin: weights/README.md)
MIN_RECALL = 0.12



def test_the_shipped_file_is_the_one_the_card_describes():
    assert WEIGHTS.is_file() and find_default_weights() == WEIGHTS
    digest = re.search(r"sha256 `([0-9a-f]{64})`", CARD.read_text()).group(1)
    assert sha256_of(WEIGHTS) == digest
    ckpt = read_checkpoint(WEIGHTS)
    assert "train_state" not in ckpt  # weights only
    floats = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    cfg = ckpt["config"]
    assert cfg["neck"] == "sspnet" and cfg["backbone"] == "mobilenet_v2"


def test_the_shipped_model_finds_the_people_in_a_sample_frame():
    detector = Detector(None, device="cpu")
    assert preset_of(detector.model.cfg) == "lite"
    result = detector.detect(REPO / "samples" / SAMPLE)
    gt = json.loads((REPO / "samples" / "annotations.json").read_text())
    image = next(im for im in gt["images"] if im["file_name"] == SAMPLE)
    boxes = [a["bbox"] for a in gt["annotations"] if a["image_id"] == image["id"] and not a["ignore"]]
    people = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes])
    assert len(people) == 39
    iou = box_iou(people, result.detections.boxes)
    found = (iou.max(dim=1).values >= 0.25).float().mean() if len(result.detections) else torch.tensor(0.0)
    assert float(found) >= MIN_RECALL, f"found {float(found):.0%} of the people"
    # and it does not paint the sea with boxes: far fewer false alarms than people
    assert len(result.detections) < 3 * len(people)
