"""Box-aware augmentations: boxes stay on the objects through every geometric transform,
photometric ones leave boxes alone, cut people become ignore regions, and the whole recipe is
a pure function of the generator."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sspnet_cli.data import synthetic_scene
from sspnet_cli.data.augment import (
    BrightnessContrast,
    ChannelShuffle,
    ColourShift,
    HorizontalFlip,
    JpegCompression,
    Patch,
    RandomBlur,
    RandomResize,
    ShiftScaleRotate,
    TrainAugment,
    affine_boxes,
    brightness_contrast,
    channel_shuffle,
    hflip,
    motion_kernel,
    resize,
    rgb_shift,
    settle_boxes,
    shift_scale_rotate,
)
from sspnet_cli.errors import SSPNetError

GROUND = (90, 90, 90)
RED = (220, 30, 30)


def _blob(box=(30, 20, 50, 30), width=96, height=80) -> Patch:
    """A solid red rectangle exactly filling ``box`` on flat grey."""
    image = np.full((height, width, 3), GROUND, dtype=np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = RED
    return Patch(image, np.array([box], dtype=np.float32))


def _red(image: np.ndarray) -> np.ndarray:
    """Pixels more red than grey (over half blob after interpolation)."""
    return image[:, :, 0].astype(np.int32) - image[:, :, 1] > (RED[0] - RED[1]) / 2


def _centres(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.stack([xs + 0.5, ys + 0.5], axis=1)


def _inside(points: np.ndarray, box: np.ndarray, tol: float) -> bool:
    x1, y1, x2, y2 = box
    return bool(
        ((points[:, 0] >= x1 - tol) & (points[:, 0] <= x2 + tol) & (points[:, 1] >= y1 - tol) & (points[:, 1] <= y2 + tol)).all()
    )


def _blob_share(mask: np.ndarray, box: np.ndarray) -> float:
    """Share of the pixels the box covers that are blob pixels."""
    x1, y1, x2, y2 = np.floor(box[:2]).astype(int).tolist() + np.ceil(box[2:]).astype(int).tolist()
    return float(mask[y1:y2, x1:x2].mean())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# -- geometric transforms ---------------------------------------------------------------------


def test_flip_mirrors_the_box_exactly_onto_the_blob():
    out = hflip(_blob((10, 20, 25, 30), width=96))
    np.testing.assert_array_equal(out.boxes, [[71, 20, 86, 30]])
    mask = _red(out.image)
    assert mask[20:30, 71:86].all() and mask.sum() == 150


@pytest.mark.parametrize("factor", [1.0, 1.23, 1.5])
def test_resize_scales_the_box_with_the_blob(factor):
    out = resize(_blob((30, 20, 50, 30)), factor)
    assert out.image.shape[:2] == (round(80 * factor), round(96 * factor))
    (box,) = out.boxes
    np.testing.assert_allclose(box, np.array([30, 20, 50, 30]) * np.tile([out.width / 96, out.height / 80], 2), rtol=1e-6)
    mask = _red(out.image)
    assert _inside(_centres(mask), box, tol=1e-3)
    assert _blob_share(mask, box) >= 0.8  # partly covered edge pixels count against it


def test_tiny_box_survives_resizing_and_rotation_with_a_real_size():
    tiny = _blob((40, 30, 43, 33))  # 3 x 3 px
    for factor in (1.0, 1.5):
        (box,) = resize(tiny, factor).boxes
        assert box[2] - box[0] >= 3 and box[3] - box[1] >= 3
    out = shift_scale_rotate(tiny, angle=45)
    (box,) = out.boxes
    np.testing.assert_allclose([box[2] - box[0], box[3] - box[1]], [3 * np.sqrt(2)] * 2, rtol=1e-5)
    assert _inside(_centres(_red(out.image)), box, tol=0.5) and _red(out.image).any()


@pytest.mark.parametrize(
    "angle,scale,shift",
    [(0, 1.0, (0.0625, -0.05)), (10, 1.0, (0, 0)), (-30, 1.1, (0.03, 0.02)), (45, 1.0, (0, 0)), (-45, 0.9, (-0.06, 0.06)), (90, 1.0, (0, 0))],
)
def test_shift_scale_rotate_box_encloses_the_blob_tightly(angle, scale, shift):
    out = shift_scale_rotate(_blob((24, 18, 52, 34)), angle, scale, shift, fill=GROUND)  # off-centre
    (box,) = out.boxes
    mask = _red(out.image)
    points = _centres(mask)
    assert len(points) > 100
    assert _inside(points, box, tol=0.5)
    # the enclosing box of a rotated rectangle is the enclosing box of its pixels
    extent = np.array([*(points.min(axis=0) - 0.5), *(points.max(axis=0) + 0.5)])
    assert _iou(extent, box) >= 0.85
    if angle % 90 == 0:
        assert _blob_share(mask, box) >= 0.6


@pytest.mark.parametrize("angle", [90, 180, -90])
def test_quarter_turns_map_the_blob_onto_the_box_pixel_for_pixel(angle):
    # 96 + 80 is even, so quarter turns about the centre map the pixel grid onto itself: any
    # half-pixel slip between image and boxes would blur the blob off its box
    out = shift_scale_rotate(_blob((10, 12, 31, 20)), angle, fill=GROUND)
    (box,) = out.boxes
    np.testing.assert_array_equal(box, np.round(box))
    x1, y1, x2, y2 = box.astype(int)
    expected = np.zeros(out.image.shape[:2], bool)
    expected[y1:y2, x1:x2] = True
    np.testing.assert_array_equal(_red(out.image), expected)
    assert (out.image[expected] == RED).all()


def test_rotation_fills_the_uncovered_corners_with_the_fill_colour():
    patch = _blob()
    out = shift_scale_rotate(patch, 45, fill=(1, 2, 3))
    assert out.image.shape == patch.image.shape
    np.testing.assert_array_equal(out.image[0, 0], [1, 2, 3])
    np.testing.assert_array_equal(out.image[-1, -1], [1, 2, 3])
    default = shift_scale_rotate(patch, 45)  # no fill: the image's own mean colour
    np.testing.assert_allclose(default.image[0, 0], patch.image.reshape(-1, 3).mean(axis=0), atol=0.51)


def test_a_person_shifted_mostly_out_becomes_ignore_and_a_region_keeps_its_visible_part():
    patch = Patch(np.zeros((50, 100, 3), np.uint8), [[80, 10, 100, 30]], [[70, 35, 100, 45]])
    half = shift_scale_rotate(patch, 0, shift=(0.1, 0))  # 10 px right: half of it still inside
    np.testing.assert_allclose(half.boxes, [[90, 10, 100, 30]])
    np.testing.assert_allclose(half.ignore_boxes, [[80, 35, 100, 45]])
    quarter = shift_scale_rotate(patch, 0, shift=(0.15, 0))  # 25 % inside: below 30 %
    assert len(quarter.boxes) == 0
    np.testing.assert_allclose(quarter.ignore_boxes, [[85, 35, 100, 45], [95, 10, 100, 30]])
    gone = shift_scale_rotate(patch, 0, shift=(0.35, 0))
    assert len(gone.boxes) == 0 and len(gone.ignore_boxes) == 0


def test_settle_boxes_turns_slivers_into_ignore_and_drops_what_is_outside():
    boxes = np.array([[10, 10, 10.6, 20], [5, 5, 9, 9], [-20, 0, -10, 5], [18, 18, 28, 28]], np.float32)
    kept, ignore = settle_boxes(boxes, np.array([[-5, -5, 2, 2], [30, 30, 40, 40]], np.float32), 20, 20)
    np.testing.assert_allclose(kept, [[5, 5, 9, 9]])
    # the 0.6 px sliver and the 4 % visible box are ignore; the region outside is gone
    np.testing.assert_allclose(ignore, [[0, 0, 2, 2], [10, 10, 10.6, 20], [18, 18, 20, 20]])


def test_affine_boxes_of_a_quarter_turn_swap_the_sides():
    m = np.array([[0.0, -1.0, 100.0], [1.0, 0.0, 0.0]])  # (x, y) -> (100 - y, x)
    np.testing.assert_allclose(affine_boxes(np.array([[10, 20, 30, 25]], np.float32), m), [[75, 10, 80, 30]])


# -- photometric transforms -------------------------------------------------------------------

PHOTOMETRIC = [
    BrightnessContrast(p=1.0),
    ColourShift(p=1.0),
    JpegCompression(p=1.0),
    ChannelShuffle(p=1.0),
    RandomBlur(p=1.0),
]


@pytest.mark.parametrize("op", PHOTOMETRIC, ids=lambda op: type(op).__name__)
def test_photometric_transforms_change_pixels_but_not_boxes(op):
    scene = synthetic_scene(96, 80, seed=3, people=4, ignore_regions=1)
    patch = Patch(scene.image, scene.boxes, scene.ignore_boxes)
    changed = False
    for seed in range(4):  # a shuffle may draw the identity order once
        out = op(patch, np.random.default_rng(seed))
        assert out.image.shape == patch.image.shape and out.image.dtype == np.uint8
        np.testing.assert_array_equal(out.boxes, patch.boxes)
        np.testing.assert_array_equal(out.ignore_boxes, patch.ignore_boxes)
        changed |= not np.array_equal(out.image, patch.image)
    assert changed


def test_photometric_functions_do_what_they_say():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(brightness_contrast(image, 1.0, 0.0), image)
    np.testing.assert_array_equal(brightness_contrast(image, 2.0, 0.1), np.clip(image * 2.0 + 25.5, 0, 255).round())
    np.testing.assert_array_equal(rgb_shift(image, (10, 0, -10)), np.clip(image.astype(int) + [10, 0, -10], 0, 255))
    np.testing.assert_array_equal(channel_shuffle(image, (2, 0, 1)), image[:, :, [2, 0, 1]])
    k = motion_kernel(3, 0)
    np.testing.assert_allclose(k, [[0, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 0]], atol=1e-6)
    assert motion_kernel(5, 37).sum() == pytest.approx(1.0)


def test_probability_zero_never_applies_and_one_always_does():
    patch = _blob()
    rng = np.random.default_rng(1)
    for _ in range(5):
        assert HorizontalFlip(p=0.0)(patch, rng) is patch
        assert ShiftScaleRotate(p=0.0)(patch, rng) is patch
        assert HorizontalFlip(p=1.0)(patch, rng).boxes[0, 0] == 96 - 50


# -- the whole recipe -------------------------------------------------------------------------

ALL_ON = TrainAugment(
    shift_scale_rotate=ShiftScaleRotate(p=1.0),
    brightness_contrast=BrightnessContrast(p=1.0),
    colour_shift=ColourShift(p=1.0),
    jpeg=JpegCompression(p=1.0),
    channel_shuffle=ChannelShuffle(p=1.0),
    blur=RandomBlur(p=1.0),
    flip=HorizontalFlip(p=1.0),
)


def test_recipe_is_a_pure_function_of_the_generator():
    scene = synthetic_scene(128, 96, seed=4, ignore_regions=1)
    patch = Patch(scene.image, scene.boxes, scene.ignore_boxes)
    a = ALL_ON(patch, np.random.default_rng(7))
    b = ALL_ON(patch, np.random.default_rng(7))
    c = ALL_ON(patch, np.random.default_rng(8))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.ignore_boxes, b.ignore_boxes)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)
    np.testing.assert_array_equal(patch.image, scene.image)  # input untouched


def test_recipe_keeps_every_person_pixel_inside_a_box_or_an_ignore_region():
    scene = synthetic_scene(256, 192, seed=11, people=14, sizes=(3, 24), background="flat", shadows=False)
    ground = scene.image[0, 0].astype(np.int32)  # flat: every non-person pixel
    # fill with the ground colour, so that only people differ from it after the transforms
    recipe = TrainAugment(
        shift_scale_rotate=ShiftScaleRotate(p=1.0, fill=tuple(float(v) for v in ground)),
        brightness_contrast=BrightnessContrast(p=0.0),
        colour_shift=ColourShift(p=0.0),
        jpeg=JpegCompression(p=0.0),
        channel_shuffle=ChannelShuffle(p=0.0),
        blur=RandomBlur(p=0.0),
    )
    for seed in range(6):
        out = recipe(Patch(scene.image, scene.boxes), np.random.default_rng(seed))
        diff = np.abs(out.image.astype(np.int32) - ground).max(axis=2)
        points = _centres(diff > 40)
        regions = np.concatenate([out.boxes, out.ignore_boxes])
        covered = np.zeros(len(points), bool)
        for x1, y1, x2, y2 in regions:
            covered |= (points[:, 0] >= x1 - 1) & (points[:, 0] <= x2 + 1) & (points[:, 1] >= y1 - 1) & (points[:, 1] <= y2 + 1)
        assert covered.all(), f"seed {seed}: {int((~covered).sum())} person pixels outside every box"
        for box in out.boxes:  # and every box is on a person
            x1, y1, x2, y2 = np.floor(box[:2]).astype(int).tolist() + np.ceil(box[2:]).astype(int).tolist()
            assert diff[y1:y2, x1:x2].max() > 10
        assert len(out.boxes) >= len(scene.boxes) // 2


def test_bad_parameters_are_refused():
    with pytest.raises(SSPNetError):
        HorizontalFlip(p=1.5)
    with pytest.raises(SSPNetError):
        RandomResize(scale=(1.5, 1.0))
    with pytest.raises(SSPNetError):
        JpegCompression(quality=(85, 101))
    with pytest.raises(SSPNetError):
        RandomBlur(kernel=4)


# -- property: boxes always inside the image with a positive size ----------------------------


@st.composite
def _patches(draw):
    w, h = draw(st.integers(8, 72)), draw(st.integers(8, 72))

    def boxes(n):
        out = []
        for _ in range(n):
            x1 = draw(st.floats(0, w - 0.1))
            y1 = draw(st.floats(0, h - 0.1))
            out.append([x1, y1, draw(st.floats(x1 + 0.1, w)), draw(st.floats(y1 + 0.1, h))])
        return np.array(out, np.float32).reshape(-1, 4)

    people, ignore = boxes(draw(st.integers(0, 6))), boxes(draw(st.integers(0, 3)))
    people = np.minimum(people, [w, h, w, h]).astype(np.float32)  # float32 rounding may pass the edge
    ignore = np.minimum(ignore, [w, h, w, h]).astype(np.float32)
    return Patch(np.full((h, w, 3), 100, np.uint8), people, ignore)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    patch=_patches(),
    low=st.floats(0.5, 1.5),
    spread=st.floats(0.0, 1.0),
    rotate=st.floats(0.0, 180.0),
    scale=st.floats(0.0, 0.5),
    shift=st.floats(0.0, 0.5),
    flip=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_output_boxes_are_inside_the_image_with_positive_size(patch, low, spread, rotate, scale, shift, flip, seed):
    recipe = TrainAugment(
        resize=RandomResize(scale=(low, low + spread)),
        shift_scale_rotate=ShiftScaleRotate(shift_limit=shift, scale_limit=scale, rotate_limit=rotate, p=1.0),
        jpeg=JpegCompression(p=0.0),
        flip=HorizontalFlip(p=flip),
    )
    out = recipe(patch, np.random.default_rng(seed))
    h, w = out.image.shape[:2]
    assert out.image.dtype == np.uint8 and out.image.shape[2] == 3
    for boxes, min_size in ((out.boxes, 1.0), (out.ignore_boxes, 0.0)):
        assert boxes.dtype == np.float32 and boxes.shape[1] == 4
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
        assert (boxes[:, 2] - boxes[:, 0] >= min_size).all() and (boxes[:, 3] - boxes[:, 1] >= min_size).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
