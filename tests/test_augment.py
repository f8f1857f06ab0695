"""Augmentations keep boxes on their objects; photometric ones leave boxes alone."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sspnet_cli.data.augment import AugmentConfig, TrainAugment, affine, blur, brightness_contrast, hflip, hsv_shift, jpeg, resize, rgb_shift, shift_scale_rotate_matrix

RED = np.array([255, 0, 0], np.uint8)


def blob_image(w=200, h=160, box=(60, 40, 72, 58)):
    img = np.full((h, w, 3), 128, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = RED
    return img, np.array([box], np.float32)


def red_mask(img):
    return (img[..., 0] > 180) & (img[..., 1] < 90) & (img[..., 2] < 90)


def check_blob_in_box(img, boxes, tight=True):
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0]
    ys, xs = np.nonzero(red_mask(img))
    assert len(xs) > 0
    # every blob pixel lies inside the box (1 px tolerance for interpolation)
    assert xs.min() >= x1 - 1 and xs.max() + 1 <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() + 1 <= y2 + 1
    if tight:
        inside = red_mask(img)[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
        assert inside.mean() >= 0.6


def test_hflip_and_resize_keep_boxes_tight():
    img, boxes = blob_image()
    out, b = hflip(img, boxes)
    assert b.tolist() == [[128, 40, 140, 58]]
    check_blob_in_box(out, b)
    out, b = resize(img, boxes, 1.37)
    check_blob_in_box(out, b)


@pytest.mark.parametrize("angle", [0, 10, 30, 45, -45])
def test_rotation_encloses_the_blob(angle):
    import cv2

    img, boxes = blob_image()
    m = cv2.getRotationMatrix2D((100, 80), angle, 1.1)
    m[0, 2] += 5
    out, b = affine(img, boxes, m, (128, 128, 128), 0.3)
    check_blob_in_box(out, b, tight=angle == 0)


def test_boxes_leaving_the_image_are_dropped():
    img, boxes = blob_image(box=(2, 2, 10, 10))
    m = np.array([[1, 0, -20], [0, 1, 0]], np.float64)  # shift 20 px left: the blob leaves
    _, b = affine(img, boxes, m, (0, 0, 0), 0.3)
    assert len(b) == 0


@pytest.mark.parametrize("fn", [brightness_contrast, rgb_shift, hsv_shift, jpeg])
def test_photometric_transforms_change_pixels_not_boxes(fn):
    img, boxes = blob_image()
    rng = np.random.default_rng(0)
    out = fn(img, rng, AugmentConfig())
    assert out.shape == img.shape and out.dtype == np.uint8
    out2 = blur(img, rng)
    assert out2.shape == img.shape


def test_whole_recipe_keeps_the_blob_in_its_box_across_seeds():
    aug = TrainAugment(AugmentConfig(rotate=0, blur_p=0, channel_shuffle_p=0, hsv_p=0, rgb_shift_p=0, brightness_contrast_p=0))
    for seed in range(12):
        img, boxes = blob_image()
        out, b = aug(img, boxes, np.random.default_rng(seed))
        if len(b):
            check_blob_in_box(out, b)


def test_same_seed_same_result():
    img, boxes = blob_image()
    aug = TrainAugment()
    a = aug(img.copy(), boxes.copy(), np.random.default_rng(7))
    b = aug(img.copy(), boxes.copy(), np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 180), st.floats(0, 140), st.floats(1, 30), st.floats(1, 30)), min_size=0, max_size=6),
    st.integers(0, 10_000),
)
def test_output_boxes_inside_the_image_with_positive_size(raw, seed):
    img = np.full((160, 200, 3), 100, np.uint8)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in raw], np.float32).reshape(-1, 4)
    out, b = TrainAugment(AugmentConfig(ssr_p=1.0))(img, boxes, np.random.default_rng(seed))
    h, w = out.shape[:2]
    assert len(b) <= len(boxes)
    if len(b):
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
        assert ((b[:, 2] - b[:, 0]) >= 1).all() and ((b[:, 3] - b[:, 1]) >= 1).all()


def test_ssr_matrix_respects_limits():
    rng = np.random.default_rng(0)
    cfg = AugmentConfig()
    for _ in range(20):
        m = shift_scale_rotate_matrix(640, 512, rng, cfg)
        scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
        assert 0.9 - 1e-6 <= scale <= 1.1 + 1e-6
