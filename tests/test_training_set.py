"""The training Dataset: ignore regions painted with the mean colour and left out of the
targets, torchvision's target contract, per-(seed, epoch, index) determinism, DataLoader use."""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch

from sspnet_cli.data import AnnotatedImage, PatchRef, open_dataset, training_patches, write_synthetic_dataset
from sspnet_cli.data.augment import ShiftScaleRotate, TrainAugment
from sspnet_cli.data.training_set import PatchDataset, collate, dataset_mean_colour, paint_regions
from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.types import Window

MEAN = (10.0, 200.0, 30.0)
WINDOW = Window(100, 50, 320, 256)  # x in [100, 420], y in [50, 306]


def _write_png(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def frame(tmp_path):
    """A 480 x 360 noise frame (PNG, so pixels read back exactly) with hand-placed people and
    ignore regions around WINDOW."""
    rgb = np.random.default_rng(0).integers(40, 180, (360, 480, 3), dtype=np.uint8)
    image = AnnotatedImage(
        path=_write_png(tmp_path / "frame.png", rgb), image_id=0, file_name="frame.png", width=480, height=360,
        boxes=[
            [150, 100, 170, 140],  # A: inside
            [88, 200, 108, 220],  # B: 8 of 20 px inside the left edge: cut, becomes ignore
            [250, 150, 262, 180],  # D: inside, its feet under an ignore region
        ],
        ignore_boxes=[
            [300, 80, 340, 120],  # C: an ignore region inside the window
            [245, 170, 290, 200],  # E: overlaps D
        ],
    )
    return image, rgb


def _pixels(tensor):
    return (tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_ignore_regions_and_cut_people_are_painted_and_left_out_of_the_targets(frame):
    image, rgb = frame
    ds = PatchDataset([image], [PatchRef(0, WINDOW)], augment=False, mean_colour=MEAN)
    tensor, target = ds[0]
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (3, 256, 320)
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    assert set(target) == {"boxes", "labels"}
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    # A and D, in patch coordinates; B (cut) and the regions are not targets
    np.testing.assert_array_equal(target["boxes"].numpy(), [[50, 50, 70, 90], [150, 100, 162, 130]])
    np.testing.assert_array_equal(target["labels"].numpy(), [1, 1])

    out = _pixels(tensor)
    patch = rgb[50:306, 100:420]
    painted = np.zeros((256, 320), bool)
    painted[30:70, 200:240] = True  # C
    painted[150:170, 0:8] = True  # B's visible part
    painted[120:150, 145:190] = True  # E ...
    painted[100:130, 150:162] = False  # ... except D's pixels
    assert (out[painted] == np.array(MEAN, np.uint8)).all()
    np.testing.assert_array_equal(out[~painted], patch[~painted])
    np.testing.assert_array_equal(ds.patch(0).ignore_boxes, [[200, 30, 240, 70], [145, 120, 190, 150], [0, 150, 8, 170]])


def test_paint_regions_covers_every_pixel_a_fractional_box_touches():
    image = np.zeros((10, 10, 3), np.uint8)
    out = paint_regions(image, np.array([[2.5, 3.2, 4.1, 5.0]], np.float32), (9, 9, 9))
    assert out[:, :, 0].sum() == 9 * (3 * 2) and (out[3:5, 2:5] == 9).all()
    assert image.sum() == 0  # not in place
    assert paint_regions(image, np.zeros((0, 4), np.float32), (9, 9, 9)) is image


def test_dataset_mean_colour_is_the_mean_of_the_sampled_frames(tmp_path):
    images = []
    for i, colour in enumerate([(10, 20, 30), (30, 40, 50), (50, 60, 70)]):
        path = _write_png(tmp_path / f"{i}.png", np.full((40, 60, 3), colour, np.uint8))
        images.append(AnnotatedImage(path=path, image_id=i, file_name=path.name, width=60, height=40))
    assert dataset_mean_colour(images) == pytest.approx((30, 40, 50))
    assert dataset_mean_colour(images, max_images=2) == pytest.approx((30, 40, 50))  # first and last
    assert dataset_mean_colour(images, max_images=1) == pytest.approx((10, 20, 30))
    ds = PatchDataset(images, [PatchRef(1, Window(0, 0, 60, 40))])
    assert ds.mean_colour == pytest.approx((30, 40, 50))
    assert ds.augment.shift_scale_rotate.fill == ds.mean_colour  # the rotation fills with it too
    with pytest.raises(SSPNetError):
        dataset_mean_colour([])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = write_synthetic_dataset(tmp_path_factory.mktemp("tiny"), "tinyperson", {"train": 3}, seed=5, ignore_regions=(1, 2))
    ds = open_dataset(root, split="train")
    return ds, training_patches(ds)


def _same(a, b):
    return a[0].shape == b[0].shape and torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"])


def test_same_seed_epoch_and_index_give_the_same_item_in_any_order(synthetic):
    ds, refs = synthetic
    a = PatchDataset(ds, refs, seed=3, mean_colour=MEAN)
    b = PatchDataset(ds, refs, seed=3, mean_colour=MEAN)
    first = [a[i] for i in range(len(a))]
    again = [b[i] for i in reversed(range(len(b)))][::-1]
    assert all(_same(x, y) for x, y in zip(first, again))

    a.set_epoch(1)
    assert not any(_same(x, a[i]) for i, x in enumerate(first))  # a new epoch, new augmentations
    a.set_epoch(0)
    assert all(_same(x, a[i]) for i, x in enumerate(first))  # and back: a resumed run
    other_seed = PatchDataset(ds, refs, seed=4, mean_colour=MEAN)
    assert not all(_same(x, other_seed[i]) for i, x in enumerate(first))
    copy = pickle.loads(pickle.dumps(a))  # what a spawned worker gets: no decoded frame
    assert copy._source is None and _same(copy[1], first[1])


def test_dataloader_yields_lists_of_images_and_torchvision_targets(synthetic):
    ds, refs = synthetic
    data = PatchDataset(ds, refs, seed=0, mean_colour=MEAN)
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=False, num_workers=0, collate_fn=collate)
    batches = list(loader)
    assert [len(images) for images, _ in batches] == [2, 1]
    for images, targets in batches:
        assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets)
        for image, target in zip(images, targets):
            assert image.dtype == torch.float32 and image.ndim == 3 and image.shape[0] == 3
            h, w = image.shape[1:]
            assert 512 <= h <= 768 and 640 <= w <= 960  # the 1.0-1.5x multi-scale resize
            boxes, labels = target["boxes"], target["labels"]
            assert set(target) == {"boxes", "labels"} and boxes.dtype == torch.float32 and labels.dtype == torch.int64
            assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0 and (labels == 1).all()
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
            assert ((boxes[:, 2:] - boxes[:, :2]) >= 1).all()


def test_frame_size_mismatch_and_bad_arguments_are_refused(frame):
    image, _ = frame
    wrong = AnnotatedImage(path=image.path, image_id=1, file_name="frame.png", width=500, height=360)
    with pytest.raises(InputError, match="480x360"):
        PatchDataset([wrong], [PatchRef(0, WINDOW)], augment=False, mean_colour=MEAN)[0]
    with pytest.raises(SSPNetError):
        PatchDataset([image], [PatchRef(1, WINDOW)], mean_colour=MEAN)
    with pytest.raises(SSPNetError):
        PatchDataset([image], [PatchRef(0, WINDOW)], mean_colour=MEAN).set_epoch(-1)
    with pytest.raises(IndexError):
        PatchDataset([image], [PatchRef(0, WINDOW)], mean_colour=MEAN)[1]


def test_a_given_fill_is_kept_and_custom_augmentations_are_called(frame):
    image, _ = frame
    aug = TrainAugment(shift_scale_rotate=ShiftScaleRotate(fill=(1.0, 2.0, 3.0)))
    assert PatchDataset([image], [PatchRef(0, WINDOW)], augment=aug, mean_colour=MEAN).augment is aug
    seen = []

    def record(patch, rng):
        seen.append(rng.integers(1 << 30))
        return patch

    ds = PatchDataset([image], [PatchRef(0, WINDOW)], augment=record, mean_colour=MEAN, seed=2, epoch=5)
    ds[0]
    ds[0]
    assert seen[0] == seen[1] == np.random.default_rng(np.random.SeedSequence([2, 5, 0])).integers(1 << 30)
