"""The 70 % rule for training patches, and which windows are trained on."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sspnet_cli.data import AnnotatedImage, patch_targets, training_patches
from sspnet_cli.data.patches import visible_fraction
from sspnet_cli.imagery.tiling import window_grid
from sspnet_cli.types import Window

WINDOW = Window(100, 200, 640, 512)  # covers x in [100, 740], y in [200, 712]


def _image(boxes, ignore=(), width=2000, height=1000):
    return AnnotatedImage(path="x.jpg", image_id=0, file_name="x.jpg", width=width, height=height, boxes=boxes, ignore_boxes=ignore)


def test_box_80_percent_inside_stays_clipped_60_percent_becomes_ignore_outside_vanishes():
    image = _image([
        [98, 198, 108, 208],  # 10x10 over the top-left corner: 80 % of each side inside
        [734, 706, 744, 716],  # over the bottom-right corner: 60 % of each side inside
        [300, 300, 310, 320],  # wholly inside
        [0, 0, 20, 20],  # outside
        [734, 400, 744, 410],  # 60 % of its width inside, all its height: sqrt(0.6) = 0.77 stays
        [94, 500, 104, 510],  # 40 % of its width inside: sqrt(0.4) = 0.63 is cut
    ])
    t = patch_targets(image, WINDOW)
    np.testing.assert_allclose(t.boxes, [[0, 0, 8, 8], [200, 100, 210, 120], [634, 200, 640, 210]])
    np.testing.assert_array_equal(t.box_index, [0, 2, 4])
    np.testing.assert_allclose(t.ignore_boxes, [[634, 506, 640, 512], [0, 300, 4, 310]])
    assert t.boxes.dtype == np.float32 and t.ignore_boxes.dtype == np.float32
    assert t.window == WINDOW


def test_threshold_is_on_the_side_and_inclusive():
    inside_70 = [97, 197, 107, 207]  # 7 of 10 px of each side inside: exactly 0.7
    inside_69 = [96.9, 196.9, 106.9, 206.9]  # 6.9 px: below
    np.testing.assert_allclose(visible_fraction(np.array([inside_70, inside_69]), WINDOW), [0.7, 0.69], atol=1e-6)
    t = patch_targets(_image([inside_70, inside_69]), WINDOW)
    np.testing.assert_array_equal(t.box_index, [0])
    assert len(t.ignore_boxes) == 1
    assert len(patch_targets(_image([inside_70]), WINDOW, min_visible=0.75).boxes) == 0


def test_ignore_regions_are_clipped_into_the_patch_and_dropped_outside():
    image = _image([], ignore=[[50, 250, 150, 300], [800, 800, 900, 900], [200, 300, 220, 330]])
    t = patch_targets(image, WINDOW)
    np.testing.assert_allclose(t.ignore_boxes, [[0, 50, 50, 100], [100, 100, 120, 130]])
    assert t.boxes.shape == (0, 4)


def test_frame_smaller_than_a_tile_keeps_its_boxes_whole():
    image = _image([[280, 180, 300, 200], [0, 0, 5, 5]], width=300, height=200)
    (window,) = window_grid(300, 200)
    assert window == Window(0, 0, 640, 512)
    t = patch_targets(image, window)
    np.testing.assert_array_equal(t.boxes, image.boxes)
    assert len(t.ignore_boxes) == 0


def test_training_patches_skip_windows_without_a_person():
    # 1300x600: windows at x 0, 610, 660 and y 0, 88 (six in all)
    people = _image(
        [
            [10, 10, 20, 20],  # only in the window at (0, 0)
            [630, 300, 650, 320],  # half its width in the x=0 windows (sqrt 0.5 = 0.71), whole in x=610
        ],
        width=1300,
        height=600,
    )
    empty = _image([], ignore=[[0, 0, 50, 50]], width=1300, height=600)
    refs = training_patches([people, empty])
    assert [(r.image_index, r.window.x, r.window.y) for r in refs] == [(0, 0, 0), (0, 610, 0), (0, 0, 88), (0, 610, 88)]
    assert all(r.window.width == 640 and r.window.height == 512 for r in refs)
    everything = training_patches([people, empty], skip_empty=False)
    assert len(everything) == 12 and {r.image_index for r in everything} == {0, 1}
    assert [r.window for r in everything[:6]] == window_grid(1300, 600)


@settings(max_examples=100, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(
            st.floats(-50, 800, allow_nan=False), st.floats(-50, 700, allow_nan=False),
            st.floats(0.5, 120), st.floats(0.5, 120),
        ),
        max_size=20,
    ),
    wx=st.integers(0, 200),
    wy=st.integers(0, 200),
)
def test_every_box_is_kept_cut_or_gone_by_the_rule(boxes, wx, wy):
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=np.float32).reshape(-1, 4)
    window = Window(wx, wy, 640, 512)
    t = patch_targets(_image(xyxy), window)
    visible = visible_fraction(xyxy, window)
    kept = visible >= 0.7
    np.testing.assert_array_equal(t.box_index, np.flatnonzero(kept))
    assert len(t.ignore_boxes) == int(((visible > 0) & ~kept).sum())
    for b in (t.boxes, t.ignore_boxes):
        assert np.all(b[:, [0, 1]] >= 0) and np.all(b[:, 2] <= 640) and np.all(b[:, 3] <= 512)
        assert np.all(b[:, 2] >= b[:, 0]) and np.all(b[:, 3] >= b[:, 1])
    # a kept box is the original, clipped and shifted
    shifted = xyxy[kept] - np.array([wx, wy, wx, wy], dtype=np.float32)
    np.testing.assert_allclose(t.boxes, np.clip(shifted, 0, [640, 512, 640, 512]), atol=1e-4)
