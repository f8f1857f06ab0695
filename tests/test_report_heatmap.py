"""Attention heatmaps: synthetic SSPNet maps resized, combined and blended over frames as PNG."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sspnet_cli.errors import SSPNetError
from sspnet_cli.imagery.sources import array_source
from sspnet_cli.outputs.heatmap import (
    COMBINED,
    blend_heat,
    heat_layers,
    heatmap_names,
    save_heatmaps,
)

W, H = 160, 96


def synthetic_maps(width: int = W, height: int = H, seed: int = 0) -> dict[str, np.ndarray]:
    """P2..P5 at strides 4..32 (rounded up, as a padded frame gives), values in [0, 1]."""
    rng = np.random.default_rng(seed)
    return {f"P{l}": rng.random((-(-height // 2**l), -(-width // 2**l)), dtype=np.float32) for l in range(2, 6)}


def test_layers_have_the_frame_size_and_values_in_0_1():
    maps = synthetic_maps()
    maps["P3"] = maps["P3"] * 3 - 1  # out of range on purpose: clipped
    maps["P4"][0, 0] = np.nan
    layers = heat_layers(maps, W, H)
    assert list(layers) == ["P2", "P3", "P4", "P5", COMBINED]
    for heat in layers.values():
        assert heat.shape == (H, W) and heat.dtype == np.float32
        assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0
    assert np.array_equal(layers[COMBINED], np.maximum.reduce([layers[k] for k in ("P2", "P3", "P4", "P5")]))


def test_a_level_lights_up_where_its_map_is_high():
    maps = {f"P{l}": np.zeros((H // 2**l, W // 2**l), np.float32) for l in range(2, 6)}
    maps["P5"][1, 2] = 1.0  # frame pixels 64..96 x 32..64
    layers = heat_layers(maps, W, H)
    assert layers["P5"][48, 80] > 0.5 and layers["P5"][5, 5] == 0.0
    assert layers["P2"].max() == 0.0
    assert layers[COMBINED][48, 80] == layers["P5"][48, 80]


def test_levels_are_ordered_by_number_not_text():
    maps = {name: np.zeros((4, 4), np.float32) for name in ("P10", "P2", "P3")}
    assert list(heat_layers(maps, 8, 8)) == ["P2", "P3", "P10", COMBINED]
    assert list(heatmap_names("f", maps).values()) == [
        "f_attention_P2.png", "f_attention_P3.png", "f_attention_P10.png", "f_attention_combined.png",
    ]


def test_blend_keeps_the_image_visible_and_colours_by_heat():
    rgb = np.full((H, W, 3), 128, np.uint8)
    heat = np.zeros((H, W), np.float32)
    heat[:, W // 2 :] = 1.0
    out = blend_heat(rgb, heat)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    low, high = out[0, 0].astype(int), out[0, -1].astype(int)
    assert high[0] > high[2] and low[2] > low[0]  # turbo: red where high, blue where low
    with pytest.raises(SSPNetError):
        blend_heat(rgb, heat[:, :10])


def test_save_heatmaps_writes_pngs_of_the_image_size(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)
    with array_source(rgb, "scene.png") as source:
        paths = save_heatmaps(tmp_path / "vis", "scene", source, synthetic_maps())
    assert list(paths) == ["P2", "P3", "P4", "P5", COMBINED]
    for path in paths.values():
        assert path.suffix == ".png" and path.parent == tmp_path / "vis"
        picture = cv2.imread(str(path))
        assert picture.shape == (H, W, 3)


def test_huge_frames_are_drawn_down_scaled_like_overlays(tmp_path):
    rgb = np.zeros((300, 900, 3), np.uint8)
    with array_source(rgb) as source:
        paths = save_heatmaps(tmp_path, "big", source, synthetic_maps(900, 300), max_side=450)
    assert cv2.imread(str(paths[COMBINED])).shape == (150, 450, 3)


def test_save_heatmaps_over_a_given_rgb_array(tmp_path):
    rgb = np.zeros((40, 50, 3), np.uint8)
    paths = save_heatmaps(tmp_path, "a", rgb, {"P2": np.ones((10, 13), np.float32)})
    assert set(paths) == {"P2", COMBINED}
    assert cv2.imread(str(paths["P2"])).shape == (40, 50, 3)
    with pytest.raises(SSPNetError):
        save_heatmaps(tmp_path, "a", rgb.astype(np.float32), {"P2": np.ones((10, 13))})


def test_bad_maps_are_refused():
    with pytest.raises(SSPNetError):
        heat_layers({}, 10, 10)
    with pytest.raises(SSPNetError):
        heat_layers({"P2": np.zeros((2, 3, 4))}, 10, 10)
    with pytest.raises(SSPNetError):
        heat_layers({"P2": np.zeros((3, 3))}, 0, 10)


