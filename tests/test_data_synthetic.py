"""Synthetic scenes: deterministic, boxes tight on the drawn people, and datasets on disk that
every reader loads back with the same boxes."""
from __future__ import annotations

import time
import zlib

import cv2
import numpy as np
import pytest

from sspnet_cli.data import open_dataset, synthetic_scene, training_patches, write_synthetic_dataset
from sspnet_cli.data.synthetic import BACKGROUNDS


def test_same_seed_same_scene_other_seed_other_scene():
    a = synthetic_scene(seed=7, ignore_regions=2)
    b = synthetic_scene(seed=7, ignore_regions=2)
    c = synthetic_scene(seed=8, ignore_regions=2)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.ignore_boxes, b.ignore_boxes)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (512, 640, 3) and a.image.dtype == np.uint8
    assert a.boxes.dtype == np.float32 and len(a.ignore_boxes) == 2


def _ground(image, box, width=3):
    """Median colour of a ``width`` px frame around ``box``, and the frame's pixels."""
    x1, y1, x2, y2 = (int(v) for v in box)
    h, w = image.shape[:2]
    mask = np.zeros((h, w), dtype=bool)
    mask[max(0, y1 - width):min(h, y2 + width), max(0, x1 - width):min(w, x2 + width)] = True
    mask[y1:y2, x1:x2] = False
    ring = image[mask].astype(np.float32)
    return np.median(ring, axis=0), ring


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_boxes_lie_on_the_people(background):
    for seed in range(3):
        scene = synthetic_scene(seed=seed, background=background, people=(20, 30), ignore_regions=1)
        assert len(scene.boxes) >= 15
        image = scene.image.astype(np.float32)
        for box in scene.boxes:
            x1, y1, x2, y2 = (int(v) for v in box)
            assert np.array_equal(box, [x1, y1, x2, y2])  # whole pixels
            ground, ring = _ground(image, box)
            inside = np.abs(image[y1:y2, x1:x2] - ground).sum(axis=2).mean()
            around = np.abs(ring - ground).sum(axis=1).mean()
            assert inside > 60 and inside > 3 * around, f"{background} seed {seed}: box {box} is not on a person"


def test_boxes_are_the_exact_extent_of_the_drawn_pixels():
    for seed in range(5):
        scene = synthetic_scene(seed=seed, background="flat", people=(20, 30), ignore_regions=2)
        image = scene.image.astype(np.int16)
        colour = np.median(image.reshape(-1, 3), axis=0)
        drawn = np.abs(image - colour).sum(axis=2) > 0
        for x1, y1, x2, y2 in scene.ignore_boxes.astype(int):
            drawn[y1:y2, x1:x2] = False
        drawn = np.pad(drawn, 1)  # box (x1, y1, x2, y2) is now drawn[y1 + 1:y2 + 1, x1 + 1:x2 + 1]
        for x1, y1, x2, y2 in scene.boxes.astype(int) + 1:
            box = drawn[y1:y2, x1:x2]
            assert box.any(axis=0).all() and box.any(axis=1).all(), "a row or column of the box is empty"
            # nothing drawn on the lines around it (shadows start a pixel right of the box)
            assert not drawn[y1 - 1, x1 - 1:x2 + 1].any() and not drawn[y2, x1 - 1:x2 + 1].any()
            assert not drawn[y1:y2, x1 - 1].any() and not drawn[y1:y2, x2].any()
        assert drawn.sum() > 0


def test_people_sizes_frame_and_ignore_regions():
    scene = synthetic_scene(width=300, height=200, seed=3, people=(30, 40), sizes=(3, 30), ignore_regions=3)
    b = scene.boxes
    heights = b[:, 3] - b[:, 1]
    assert heights.min() >= 3 and heights.max() <= 30
    assert np.all(b[:, :2] >= 0) and np.all(b[:, 2] <= 300) and np.all(b[:, 3] <= 200)
    for x1, y1, x2, y2 in scene.ignore_boxes.astype(int):
        region = scene.image[y1:y2, x1:x2].reshape(-1, 3)
        assert np.all(region == region[0]) and region[0][0] == region[0][1] == region[0][2]  # flat grey
        overlaps = (b[:, 0] < x2) & (b[:, 2] > x1) & (b[:, 1] < y2) & (b[:, 3] > y1)
        assert not overlaps.any()


def test_a_scene_takes_milliseconds():
    synthetic_scene(seed=0)
    times = []
    for seed in range(5):
        start = time.perf_counter()
        synthetic_scene(seed=seed, ignore_regions=2)
        times.append(time.perf_counter() - start)
    assert sorted(times)[2] < 0.1


@pytest.mark.parametrize("layout", ["tinyperson", "coco", "yolo"])
@pytest.mark.parametrize("image_format", ["jpg", "png"])
def test_written_dataset_reads_back_with_the_same_boxes(tmp_path, layout, image_format):
    size = (160, 120)
    root = write_synthetic_dataset(
        tmp_path / layout, layout, splits={"train": 3, "valid": 2}, size=size, seed=5,
        image_format=image_format, ignore_regions=(1, 2),
    )
    for split, count in (("train", 3), ("valid", 2)):
        ds = open_dataset(root, split)
        assert ds.layout == layout and len(ds) == count and ds.problems == []
        for i, im in enumerate(ds.images):
            scene = synthetic_scene(*size, seed=[5, zlib.crc32(split.encode()), i], ignore_regions=(1, 2))
            assert (im.width, im.height) == size and im.path.suffix == f".{image_format}"
            np.testing.assert_allclose(im.boxes, scene.boxes, atol=1e-4)
            np.testing.assert_allclose(im.ignore_boxes, scene.ignore_boxes, atol=1e-4)
            assert len(scene.ignore_boxes) >= 1
            pixels = cv2.cvtColor(cv2.imread(str(im.path)), cv2.COLOR_BGR2RGB)
            if image_format == "png":
                np.testing.assert_array_equal(pixels, scene.image)
            else:
                assert np.abs(pixels.astype(int) - scene.image).mean() < 6
    assert len(training_patches(open_dataset(root, "train"), tile=(96, 64), overlap=8)) > 0


def test_written_dataset_is_deterministic(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", "coco", splits={"train": 2}, size=(64, 48), seed=1)
    b = write_synthetic_dataset(tmp_path / "b", "coco", splits={"train": 2}, size=(64, 48), seed=1)
    for name in ("_annotations.coco.json", "train_0000.jpg", "train_0001.jpg"):
        assert (a / "train" / name).read_bytes() == (b / "train" / name).read_bytes()
