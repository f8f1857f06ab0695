"""Box-aware training augmentations on numpy patches, with the reference recipe as defaults.

A :class:`Patch` is an RGB ``uint8`` H x W x 3 image with its people (``boxes``) and its
regions that count neither as person nor as background (``ignore_boxes``), both (N, 4)
float32 ``x1, y1, x2, y2`` in pixels (GDAL's corner convention, as everywhere in sspnet).

Two layers:

* plain functions that apply one transform with explicit parameters (:func:`resize`,
  :func:`shift_scale_rotate`, :func:`hflip`, :func:`brightness_contrast`, ...), deterministic
  and testable on their own;
* small frozen dataclasses that draw those parameters from an explicit
  :class:`numpy.random.Generator` (never the global RNG, so a run is reproducible and can be
  resumed) and apply them with probability ``p``; :class:`TrainAugment` chains them.

The defaults are SSPNet's official mmdetection recipe (``configs/_base_/datasets``): a
multi-scale resize of the 640x512 patch between 640x512 and 960x768 (factor 1.0-1.5), then
albumentations' ShiftScaleRotate (shift 0.0625, scale 0, rotate 45, p 0.5),
RandomBrightnessContrast (brightness -0.1..0.3, contrast 0.1..0.3, p 0.4), one of RGBShift
(10) / HueSaturationValue (20, 30, 20) with p 0.1, JPEG quality 85-95 (p 0.2), ChannelShuffle
(p 0.1), one of Blur / MedianBlur / MotionBlur with a 3 px kernel (p 0.1), and a horizontal
flip (p 0.5). Where this module differs from that config, on purpose:

* the rotation's empty corners are filled with a flat colour (the dataset mean colour when
  :class:`~sspnet_cli.data.training_set.PatchDataset` builds the recipe), not albumentations'
  default reflection, which would mirror people into the patch without boxes;
* a person whose box keeps less than ``min_visibility`` (30 %) of its area inside the patch
  after a transform, or ends up narrower or lower than ``min_size`` (1 px), is not dropped
  but becomes an ignore region, as the 70 % rule does for patch borders: a half-visible person
  is neither a positive nor a negative;
* the resize factor is uniform in [1.0, 1.5] (mmdetection draws both sides of the target
  scale and keeps the smaller ratio, which leans towards small factors).

Boxes follow the geometry exactly: resizing scales them, a flip mirrors them, a rotation
maps each box to the enclosing axis-aligned box of its four rotated corners (which contains
the person, at the price of some slack), clipped to the image. Photometric transforms leave
the boxes as they are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from sspnet_cli.data.sample import as_boxes
from sspnet_cli.errors import SSPNetError

#: a person box must keep at least this share of its area inside the image after a transform
MIN_VISIBILITY = 0.3
#: ... and at least this width and height in pixels
MIN_BOX_SIZE = 1.0

Colour = tuple[float, float, float]


@dataclass(eq=False)
class Patch:
    """An RGB ``image`` (H, W, 3) uint8 with ``boxes`` (N, 4) and ``ignore_boxes`` (M, 4),
    float32 xyxy in the image's pixels."""

    image: np.ndarray
    boxes: np.ndarray
    ignore_boxes: np.ndarray = field(default_factory=lambda: as_boxes([]))

    def __post_init__(self) -> None:
        self.boxes = as_boxes(self.boxes)
        self.ignore_boxes = as_boxes(self.ignore_boxes)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def with_image(self, image: np.ndarray) -> "Patch":
        """The same boxes over another image of the same size (photometric transforms)."""
        return Patch(image, self.boxes, self.ignore_boxes)


# --------------------------------------------------------------------------------------------
# Box bookkeeping


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def settle_boxes(
    boxes: np.ndarray,
    ignore_boxes: np.ndarray,
    width: int,
    height: int,
    min_visibility: float = MIN_VISIBILITY,
    min_size: float = MIN_BOX_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip transformed boxes to a ``width`` x ``height`` image and sort them out.

    A person stays when at least ``min_visibility`` of its box's area is inside and the
    clipped box is at least ``min_size`` px wide and high; otherwise, when some of it is still
    inside, its clipped box joins the ignore regions. Ignore regions are kept wherever some of
    their area is inside (a sliver of a region is still not background). Returns
    ``(boxes, ignore_boxes)``, float32.
    """
    boxes = as_boxes(boxes)
    limits = np.array([width, height, width, height], dtype=np.float32)
    clipped = np.clip(boxes, 0, limits)
    size = clipped[:, 2:] - clipped[:, :2]
    full = _area(boxes.astype(np.float64))
    inside = _area(clipped.astype(np.float64))
    visible = np.divide(inside, full, out=np.zeros_like(full), where=full > 0)
    keep = (visible >= min_visibility) & (size >= min_size).all(axis=1)
    cut = ~keep & (size > 0).all(axis=1)
    regions = np.clip(as_boxes(ignore_boxes), 0, limits)
    regions = regions[(regions[:, 2:] > regions[:, :2]).all(axis=1)]
    return clipped[keep], np.concatenate([regions, clipped[cut]])


def affine_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The axis-aligned boxes enclosing ``boxes`` (N, 4) after the 2 x 3 affine ``matrix``
    (acting on corner coordinates): min and max of the four mapped corners."""
    boxes = as_boxes(boxes)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack(c, axis=1) for c in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))], axis=1)
    mapped = corners.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Geometric transforms (boxes follow)


def resize(patch: Patch, factor: float, min_size: float = MIN_BOX_SIZE) -> Patch:
    """The patch scaled by ``factor`` (bilinear; sides rounded to whole pixels, boxes scaled by
    the exact ratio of the new to the old side). Boxes below ``min_size`` become ignore."""
    h, w = patch.image.shape[:2]
    nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
    if (nw, nh) == (w, h):
        image = patch.image
    else:
        # INTER_LINEAR samples at pixel centres ((x + 0.5) / s - 0.5), so corner coordinates
        # scale by exactly nw / w
        image = cv2.resize(patch.image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    scale = np.array([nw / w, nh / h, nw / w, nh / h], dtype=np.float32)
    boxes, ignore = settle_boxes(patch.boxes * scale, patch.ignore_boxes * scale, nw, nh, 0.0, min_size)
    return Patch(image, boxes, ignore)


def hflip(patch: Patch) -> Patch:
    """The patch mirrored left-right."""
    w = patch.width

    def mirror(b: np.ndarray) -> np.ndarray:
        return np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1).astype(np.float32)

    return Patch(cv2.flip(patch.image, 1), mirror(patch.boxes), mirror(patch.ignore_boxes))


def shift_scale_rotate_matrix(width: int, height: int, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """The 2 x 3 affine matrix, on corner coordinates, that rotates by ``angle`` degrees
    (counter-clockwise as seen on screen) and scales by ``scale`` about the image centre, then
    shifts by ``shift`` (fractions of the width and height)."""
    m = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    m[:, 2] += (shift[0] * width, shift[1] * height)
    return m


def shift_scale_rotate(
    patch: Patch,
    angle: float,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    fill: Optional[Colour] = None,
    min_visibility: float = MIN_VISIBILITY,
    min_size: float = MIN_BOX_SIZE,
) -> Patch:
    """The patch rotated by ``angle`` degrees and scaled by ``scale`` about its centre, then
    shifted by ``shift`` (fractions of its size); the size stays. Uncovered pixels get ``fill``
    (default: the image's mean colour). Boxes become the enclosing boxes of their rotated
    corners, sorted out by :func:`settle_boxes`."""
    h, w = patch.image.shape[:2]
    m = shift_scale_rotate_matrix(w, h, angle, scale, shift)
    # warpAffine maps pixel indices, whose centres sit at +0.5 in corner coordinates:
    # q_idx = A (p_idx + 0.5) + t - 0.5
    m_idx = m.copy()
    m_idx[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    colour = cv2.mean(patch.image)[:3] if fill is None else fill
    border = tuple(int(round(v)) for v in colour)
    image = cv2.warpAffine(
        patch.image, m_idx, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )
    boxes, ignore = settle_boxes(
        affine_boxes(patch.boxes, m), affine_boxes(patch.ignore_boxes, m), w, h, min_visibility, min_size
    )
    return Patch(image, boxes, ignore)


# --------------------------------------------------------------------------------------------
# Photometric transforms (images only; uint8 in, uint8 out)


def _lut(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def brightness_contrast(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``image * alpha + beta * 255``, saturated (albumentations' RandomBrightnessContrast with
    ``contrast = alpha - 1`` and ``brightness = beta``)."""
    return cv2.LUT(image, _lut(np.arange(256) * alpha + beta * 255.0))


def rgb_shift(image: np.ndarray, shifts: tuple[float, float, float]) -> np.ndarray:
    """``shifts`` (R, G, B) added to the channels, saturated."""
    lut = _lut(np.arange(256)[:, None] + np.asarray(shifts, dtype=np.float64)[None, :])
    return cv2.LUT(image, lut.reshape(1, 256, 3))


def hsv_shift(image: np.ndarray, hue: float, saturation: float, value: float) -> np.ndarray:
    """Hue shifted by ``hue`` on OpenCV's 0-179 scale (2 degrees a step, wrapping), saturation
    and value by ``saturation`` and ``value`` on 0-255 (saturated)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    levels = np.arange(256, dtype=np.float64)
    lut = np.stack([np.mod(np.rint(levels + hue), 180), levels + saturation, levels + value], axis=1)
    hsv = cv2.LUT(hsv, _lut(lut).reshape(1, 256, 3))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` encoded as a JPEG at ``quality`` (1-100) and decoded again."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
        raise SSPNetError("JPEG re-compression failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def channel_shuffle(image: np.ndarray, order: tuple[int, int, int]) -> np.ndarray:
    """The channels of ``image`` in ``order`` (a permutation of 0, 1, 2)."""
    out = np.empty_like(image)
    # mixChannels: about 10x faster than numpy's fancy indexing on the channel axis
    cv2.mixChannels([image], [out], [order[0], 0, order[1], 1, order[2], 2])
    return out


def box_blur(image: np.ndarray, kernel: int) -> np.ndarray:
    """Mean over a ``kernel`` x ``kernel`` square."""
    return cv2.blur(image, (kernel, kernel))


def median_blur(image: np.ndarray, kernel: int) -> np.ndarray:
    """Median over a ``kernel`` x ``kernel`` square (``kernel`` odd)."""
    return cv2.medianBlur(image, kernel)


def motion_kernel(kernel: int, angle: float) -> np.ndarray:
    """A normalised ``kernel`` x ``kernel`` line through the centre at ``angle`` degrees."""
    k = np.zeros((kernel, kernel), dtype=np.float32)
    r = (kernel - 1) / 2
    dx, dy = r * np.cos(np.radians(angle)), r * np.sin(np.radians(angle))
    p0 = (int(round(r - dx)), int(round(r - dy)))
    p1 = (int(round(r + dx)), int(round(r + dy)))
    cv2.line(k, p0, p1, 1.0, thickness=1)
    return k / k.sum()


def motion_blur(image: np.ndarray, kernel: int, angle: float) -> np.ndarray:
    """Blur along a line of ``kernel`` px at ``angle`` degrees (camera or subject motion)."""
    return cv2.filter2D(image, -1, motion_kernel(kernel, angle), borderType=cv2.BORDER_REFLECT_101)


# --------------------------------------------------------------------------------------------
# Random transforms: parameters drawn from an explicit Generator


def _check_p(p: float, name: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise SSPNetError(f"{name}.p must be in [0, 1], got {p}")


def _check_range(r: tuple[float, float], name: str, low: float = -np.inf, high: float = np.inf) -> None:
    if len(r) != 2 or not low <= r[0] <= r[1] <= high:
        raise SSPNetError(f"{name} must be a range (low, high) with {low} <= low <= high <= {high}, got {r}")


def _happens(rng: np.random.Generator, p: float) -> bool:
    return p > 0 and rng.random() < p


@dataclass(frozen=True)
class RandomResize:
    """Multi-scale training: the patch resized by a factor drawn uniformly from ``scale``
    (always applied). Default 1.0-1.5: the official 640x512 -> up to 960x768."""

    scale: tuple[float, float] = (1.0, 1.5)
    min_size: float = MIN_BOX_SIZE

    def __post_init__(self) -> None:
        _check_range(self.scale, "resize.scale", low=1e-3)

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        return resize(patch, float(rng.uniform(*self.scale)), self.min_size)


@dataclass(frozen=True)
class ShiftScaleRotate:
    """With probability ``p``: rotate by an angle uniform in +-``rotate_limit`` degrees, scale
    by 1 + uniform(+-``scale_limit``), shift by uniform(+-``shift_limit``) of the width and of
    the height. ``fill`` colours the uncovered corners (None: the image's mean colour).

    Default ``scale_limit`` 0: the official config leaves scale to the multi-scale resize.
    """

    shift_limit: float = 0.0625
    scale_limit: float = 0.0
    rotate_limit: float = 45.0
    p: float = 0.5
    fill: Optional[Colour] = None
    min_visibility: float = MIN_VISIBILITY
    min_size: float = MIN_BOX_SIZE

    def __post_init__(self) -> None:
        _check_p(self.p, "shift_scale_rotate")
        if self.shift_limit < 0 or not 0 <= self.scale_limit < 1 or self.rotate_limit < 0:
            raise SSPNetError("shift_scale_rotate limits must be >= 0 (scale_limit < 1)")
        if not 0.0 <= self.min_visibility <= 1.0:
            raise SSPNetError(f"shift_scale_rotate.min_visibility must be in [0, 1], got {self.min_visibility}")

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        if not _happens(rng, self.p):
            return patch
        angle = float(rng.uniform(-self.rotate_limit, self.rotate_limit))
        scale = 1.0 + float(rng.uniform(-self.scale_limit, self.scale_limit))
        dx, dy = (float(v) for v in rng.uniform(-self.shift_limit, self.shift_limit, size=2))
        return shift_scale_rotate(patch, angle, scale, (dx, dy), self.fill, self.min_visibility, self.min_size)


@dataclass(frozen=True)
class BrightnessContrast:
    """With probability ``p``: :func:`brightness_contrast` with ``beta`` uniform in
    ``brightness_limit`` and ``alpha = 1 + uniform(contrast_limit)`` (official: brightness
    -0.1..0.3, contrast 0.1..0.3, p 0.4)."""

    brightness_limit: tuple[float, float] = (-0.1, 0.3)
    contrast_limit: tuple[float, float] = (0.1, 0.3)
    p: float = 0.4

    def __post_init__(self) -> None:
        _check_p(self.p, "brightness_contrast")
        _check_range(self.brightness_limit, "brightness_contrast.brightness_limit", -1.0, 1.0)
        _check_range(self.contrast_limit, "brightness_contrast.contrast_limit", -1.0)

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        if not _happens(rng, self.p):
            return patch
        beta = float(rng.uniform(*self.brightness_limit))
        alpha = 1.0 + float(rng.uniform(*self.contrast_limit))
        return patch.with_image(brightness_contrast(patch.image, alpha, beta))


@dataclass(frozen=True)
class ColourShift:
    """With probability ``p``, one of (equally likely): an RGB shift, each channel by
    uniform(+-``rgb_shift_limit``); or an HSV shift by uniform(+-``hue_shift_limit``) on
    OpenCV's 0-179 hue scale, +-``sat_shift_limit`` and +-``val_shift_limit`` on 0-255
    (official: 10; 20, 30, 20; p 0.1)."""

    rgb_shift_limit: float = 10.0
    hue_shift_limit: float = 20.0
    sat_shift_limit: float = 30.0
    val_shift_limit: float = 20.0
    p: float = 0.1

    def __post_init__(self) -> None:
        _check_p(self.p, "colour_shift")
        if min(self.rgb_shift_limit, self.hue_shift_limit, self.sat_shift_limit, self.val_shift_limit) < 0:
            raise SSPNetError("colour_shift limits must be >= 0")

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        if not _happens(rng, self.p):
            return patch
        if rng.random() < 0.5:
            r, g, b = (float(v) for v in rng.uniform(-self.rgb_shift_limit, self.rgb_shift_limit, size=3))
            return patch.with_image(rgb_shift(patch.image, (r, g, b)))
        limits = np.array([self.hue_shift_limit, self.sat_shift_limit, self.val_shift_limit])
        hue, sat, val = (float(v) for v in rng.uniform(-limits, limits))
        return patch.with_image(hsv_shift(patch.image, hue, sat, val))


@dataclass(frozen=True)
class JpegCompression:
    """With probability ``p``: JPEG re-compression at a quality drawn uniformly (integers)
    from ``quality`` (official: 85-95, p 0.2)."""

    quality: tuple[int, int] = (85, 95)
    p: float = 0.2

    def __post_init__(self) -> None:
        _check_p(self.p, "jpeg")
        _check_range(self.quality, "jpeg.quality", 1, 100)

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        if not _happens(rng, self.p):
            return patch
        quality = int(rng.integers(self.quality[0], self.quality[1] + 1))
        return patch.with_image(jpeg_compress(patch.image, quality))


@dataclass(frozen=True)
class ChannelShuffle:
    """With probability ``p``: the RGB channels in a random order (official p 0.1)."""

    p: float = 0.1

    def __post_init__(self) -> None:
        _check_p(self.p, "channel_shuffle")

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        if not _happens(rng, self.p):
            return patch
        first, second, third = (int(v) for v in rng.permutation(3))
        return patch.with_image(channel_shuffle(patch.image, (first, second, third)))


@dataclass(frozen=True)
class RandomBlur:
    """With probability ``p``, one of (equally likely): box blur, median blur, or motion blur
    along a random direction, all with a ``kernel`` px kernel (official: 3, p 0.1)."""

    kernel: int = 3
    p: float = 0.1

    def __post_init__(self) -> None:
        _check_p(self.p, "blur")
        if self.kernel < 3 or self.kernel % 2 == 0:
            raise SSPNetError(f"blur.kernel must be odd and >= 3, got {self.kernel}")

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        if not _happens(rng, self.p):
            return patch
        kind = int(rng.integers(3))
        if kind == 0:
            return patch.with_image(box_blur(patch.image, self.kernel))
        if kind == 1:
            return patch.with_image(median_blur(patch.image, self.kernel))
        return patch.with_image(motion_blur(patch.image, self.kernel, float(rng.uniform(0.0, 180.0))))


@dataclass(frozen=True)
class HorizontalFlip:
    """With probability ``p``: the patch mirrored left-right (official p 0.5)."""

    p: float = 0.5

    def __post_init__(self) -> None:
        _check_p(self.p, "flip")

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        return hflip(patch) if _happens(rng, self.p) else patch


@dataclass(frozen=True)
class TrainAugment:
    """The training recipe: resize, shift-scale-rotate, brightness/contrast, colour shift,
    JPEG, channel shuffle, blur, flip, in that order (the official order). Every step is a
    field; set its ``p`` to 0 (or the resize range to (1, 1)) to turn it off.

    ``augment(patch, rng)`` returns a new :class:`Patch`; the input is not modified. The same
    patch and the same generator state always give the same output.
    """

    resize: RandomResize = field(default_factory=RandomResize)
    shift_scale_rotate: ShiftScaleRotate = field(default_factory=ShiftScaleRotate)
    brightness_contrast: BrightnessContrast = field(default_factory=BrightnessContrast)
    colour_shift: ColourShift = field(default_factory=ColourShift)
    jpeg: JpegCompression = field(default_factory=JpegCompression)
    channel_shuffle: ChannelShuffle = field(default_factory=ChannelShuffle)
    blur: RandomBlur = field(default_factory=RandomBlur)
    flip: HorizontalFlip = field(default_factory=HorizontalFlip)

    def __call__(self, patch: Patch, rng: np.random.Generator) -> Patch:
        for step in (
            self.resize,
            self.shift_scale_rotate,
            self.brightness_contrast,
            self.colour_shift,
            self.jpeg,
            self.channel_shuffle,
            self.blur,
            self.flip,
        ):
            patch = step(patch, rng)
        return patch
