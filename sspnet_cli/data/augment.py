"""Box-aware training augmentations (the SSPNet recipe), on numpy RGB images.

Every transform takes an explicit ``numpy.random.Generator``, so an augmented patch is a pure
function of its seed: runs are reproducible and a resumed run sees the same patches. Boxes are
(N, 4) float32 xyxy pixels. Geometric transforms move the boxes; photometric ones leave them.

Defaults (``AugmentConfig``) follow the reference recipe: multi-scale 1.0-1.5x,
shift-scale-rotate (shift 0.0625, scale +-0.1, rotate +-45 deg, p 0.5), brightness/contrast,
RGB and HSV shifts, JPEG quality 85-95, channel shuffle, one of blur / median / motion blur with
3 px kernels (larger kernels erase 3 px people), horizontal flip 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class AugmentConfig:
    scale_range: tuple[float, float] = (1.0, 1.5)
    ssr_p: float = 0.5
    shift: float = 0.0625
    scale: float = 0.1
    rotate: float = 45.0
    min_visible: float = 0.3  # a box keeping less of its (rotated) area inside the image is dropped
    brightness_contrast_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    rgb_shift_p: float = 0.3
    rgb_shift: int = 15
    hsv_p: float = 0.3
    hue: int = 10
    saturation: int = 20
    value: int = 15
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (85, 95)
    channel_shuffle_p: float = 0.1
    blur_p: float = 0.2
    hflip_p: float = 0.5


def resize(image: Array, boxes: Array, factor: float) -> tuple[Array, Array]:
    """Scale the image and its boxes by ``factor``."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    sx, sy = size[0] / w, size[1] / h
    return out, boxes * np.array([sx, sy, sx, sy], dtype=np.float32)


def hflip(image: Array, boxes: Array) -> tuple[Array, Array]:
    w = image.shape[1]
    out = np.ascontiguousarray(image[:, ::-1])
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return out, flipped


def affine(image: Array, boxes: Array, matrix: Array, fill: Sequence[float], min_visible: float) -> tuple[Array, Array]:
    """Warp by a 2x3 ``matrix`` (output size = input size, border filled with ``fill``); each box
    becomes the enclosing box of its moved corners, clipped; boxes with less than ``min_visible``
    of that box inside the image, or under 1 px after clipping, are dropped."""
    h, w = image.shape[:2]
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=tuple(float(v) for v in fill))
    if len(boxes) == 0:
        return out, boxes
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    enclosing = np.concatenate([moved.min(1), moved.max(1)], 1)
    return out, _clip_and_filter(enclosing, w, h, min_visible)


def _clip_and_filter(boxes: Array, w: int, h: int, min_visible: float) -> Array:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w), boxes[:, 3].clip(0, h)], 1)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (cw >= 1) & (ch >= 1) & (cw * ch >= min_visible * np.maximum(area, 1e-6))
    return clipped[keep].astype(np.float32)


def shift_scale_rotate_matrix(w: int, h: int, rng: np.random.Generator, cfg: AugmentConfig) -> Array:
    angle = rng.uniform(-cfg.rotate, cfg.rotate)
    scale = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[0, 2] += rng.uniform(-cfg.shift, cfg.shift) * w
    matrix[1, 2] += rng.uniform(-cfg.shift, cfg.shift) * h
    return matrix


def brightness_contrast(image: Array, rng: np.random.Generator, cfg: AugmentConfig) -> Array:
    alpha = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    beta = 255.0 * rng.uniform(-cfg.brightness, cfg.brightness)
    return cv2.convertScaleAbs(image, alpha=alpha, beta=beta)


def rgb_shift(image: Array, rng: np.random.Generator, cfg: AugmentConfig) -> Array:
    shift = rng.integers(-cfg.rgb_shift, cfg.rgb_shift + 1, size=3)
    return np.clip(image.astype(np.int16) + shift, 0, 255).astype(np.uint8)


def hsv_shift(image: Array, rng: np.random.Generator, cfg: AugmentConfig) -> Array:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + rng.integers(-cfg.hue, cfg.hue + 1)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + rng.integers(-cfg.saturation, cfg.saturation + 1), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + rng.integers(-cfg.value, cfg.value + 1), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def jpeg(image: Array, rng: np.random.Generator, cfg: AugmentConfig) -> Array:
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else image


def blur(image: Array, rng: np.random.Generator) -> Array:
    """One of Gaussian, median or motion blur, 3 px kernels."""
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return cv2.GaussianBlur(image, (3, 3), 0)
    if kind == 1:
        return cv2.medianBlur(image, 3)
    kernel = np.zeros((3, 3), np.float32)
    if rng.random() < 0.5:
        kernel[1, :] = 1 / 3
    else:
        kernel[:, 1] = 1 / 3
    return cv2.filter2D(image, -1, kernel)


class TrainAugment:
    """The whole recipe, applied in the reference's order; ``fill`` is the colour of borders
    uncovered by shifting/rotating (the dataset's mean colour)."""

    def __init__(self, cfg: AugmentConfig = AugmentConfig(), fill: Sequence[float] = (124, 116, 104)) -> None:
        self.cfg = cfg
        self.fill = tuple(fill)

    def __call__(self, image: Array, boxes: Array, rng: np.random.Generator) -> tuple[Array, Array]:
        cfg = self.cfg
        lo, hi = cfg.scale_range
        if hi > lo or lo != 1.0:
            image, boxes = resize(image, boxes, rng.uniform(lo, hi))
        if rng.random() < cfg.ssr_p:
            h, w = image.shape[:2]
            image, boxes = affine(image, boxes, shift_scale_rotate_matrix(w, h, rng, cfg), self.fill, cfg.min_visible)
        if rng.random() < cfg.brightness_contrast_p:
            image = brightness_contrast(image, rng, cfg)
        if rng.random() < cfg.rgb_shift_p:
            image = rgb_shift(image, rng, cfg)
        if rng.random() < cfg.hsv_p:
            image = hsv_shift(image, rng, cfg)
        if rng.random() < cfg.jpeg_p:
            image = jpeg(image, rng, cfg)
        if rng.random() < cfg.channel_shuffle_p:
            image = np.ascontiguousarray(image[..., rng.permutation(3)])
        if rng.random() < cfg.blur_p:
            image = blur(image, rng)
        if rng.random() < cfg.hflip_p:
            image, boxes = hflip(image, boxes)
        return image, boxes.astype(np.float32).reshape(-1, 4)
