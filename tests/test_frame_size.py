"""``--frame-size``: frames stored at the wrong shape (TinyPerson-RF squeezes 16:9 video frames to
640x640) resized before patches are cut and before detection; results and metrics stay in the
stored frames' pixels."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakes import RedBlobModel, scene_with_blobs
from sspnet_cli.api.evaluate import training_frame_size
from sspnet_cli.cli.options import parse_frame_size
from sspnet_cli.config import TrainConfig
from sspnet_cli.data.patches import training_patches
from sspnet_cli.data.sample import AnnotatedImage
from sspnet_cli.data.training_set import PatchDataset
from sspnet_cli.errors import SSPNetError
from sspnet_cli.imagery.sources import array_source, resized_source
from sspnet_cli.inference.engine import Detector
from sspnet_cli.types import Window


def write_png(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_annotations_scale_per_axis():
    image = AnnotatedImage("f.jpg", 1, "f.jpg", 640, 640, boxes=[[10, 20, 13, 29]], ignore_boxes=[[100, 100, 200, 140]])
    big = image.resized(1760, 990)
    assert (big.width, big.height) == (1760, 990)
    np.testing.assert_allclose(big.boxes, [[27.5, 30.9375, 35.75, 44.859375]], rtol=1e-6)
    np.testing.assert_allclose(big.ignore_boxes, [[275, 154.6875, 550, 216.5625]], rtol=1e-6)
    assert image.boxes[0, 0] == 10  # the original is left alone
    assert len(big.ignore_flags) == 1 and big.path == image.path


def test_resized_source_matches_a_whole_frame_resize():
    rgb = np.random.default_rng(0).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    source = resized_source(array_source(rgb), 176, 99)
    assert (source.width, source.height) == (176, 99)
    expected = cv2.resize(rgb, (176, 99), interpolation=cv2.INTER_LINEAR)
    window, _ = source.read(Window(40, 30, 50, 60))
    np.testing.assert_array_equal(window, expected[30:90, 40:90])
    with pytest.raises(SSPNetError, match="positive"):
        resized_source(array_source(rgb), 0, 10)


def test_detection_runs_on_the_resized_frame_and_reports_in_stored_pixels():
    # a 400x400 frame holding blobs; resized to 800x600 the model sees 4 tiles (x 0/160, y 0/88)
    blobs = [(10, 20, 20, 40), (300, 350, 320, 380), (390, 0, 400, 10)]
    rgb = scene_with_blobs(400, 400, blobs)
    model = RedBlobModel()
    detector = Detector.from_model(model, device="cpu", frame_size=(800, 600))
    result = detector.detect(rgb)
    assert (result.width, result.height) == (400, 400)
    assert sum(model.batches) == 4
    found = sorted(tuple(round(v) for v in b) for b in result.detections.boxes.tolist())
    # bilinear up-sampling blurs the blob edges by up to a stored pixel
    assert len(found) == len(blobs)
    for got, want in zip(found, sorted(blobs)):
        assert max(abs(g - w) for g, w in zip(got, want)) <= 1
    plain = Detector.from_model(RedBlobModel(), device="cpu").detect(rgb)
    assert len(plain.detections) == len(blobs)


def test_patches_are_cut_from_the_resized_frame(tmp_path):
    rgb = scene_with_blobs(320, 320, [(100, 100, 104, 112)])
    path = write_png(tmp_path / "f.png", rgb)
    image = AnnotatedImage(path, 1, "f.png", 320, 320, boxes=[[100, 100, 104, 112]]).resized(880, 495)
    refs = training_patches([image])
    data = PatchDataset([image], refs, augment=False, mean_colour=(0, 0, 0), frame_size=(880, 495))
    patch = data.patch(0)
    window = refs[0].window
    expected = cv2.resize(rgb, (880, 495), interpolation=cv2.INTER_LINEAR)[window.y : window.y + window.height, window.x : window.x + window.width]
    np.testing.assert_array_equal(patch.image[: expected.shape[0], : expected.shape[1]], expected)
    np.testing.assert_allclose(patch.boxes, [[275 - window.x, 154.6875 - window.y, 286 - window.x, 173.25 - window.y]], rtol=1e-6)
    # the stored frame's size no longer fits the resized annotations without frame_size
    with pytest.raises(SSPNetError, match="annotations say"):
        PatchDataset([image], refs, augment=False, mean_colour=(0, 0, 0)).patch(0)


def test_the_option_is_parsed_recorded_and_read_back():
    assert parse_frame_size("1760x990") == (1760, 990)
    assert parse_frame_size("native") is None and parse_frame_size(None) is None
    for bad in ("1760", "axb", "10x10"):
        with pytest.raises(SSPNetError, match="--frame-size"):
            parse_frame_size(bad)
    cfg = TrainConfig(frame_size=(1760, 990))
    assert TrainConfig.from_dict(cfg.to_dict()).frame_size == (1760, 990)
    assert training_frame_size({"train_config": cfg.to_dict()}) == (1760, 990)
    assert training_frame_size({"train_config": TrainConfig().to_dict()}) is None
    assert training_frame_size({}) is None


def test_info_says_what_size_the_model_trained_at():
    from sspnet_cli.config import preset_config
    from sspnet_cli.model.build import build_from_config
    from sspnet_cli.model.summary import describe

    model = build_from_config(preset_config("lite"))
    meta = {"train_config": TrainConfig(frame_size=(1760, 990)).to_dict()}
    assert tuple(describe(model, meta)["training_frame_size"]) == (1760, 990)
    assert describe(model, None)["training_frame_size"] is None
