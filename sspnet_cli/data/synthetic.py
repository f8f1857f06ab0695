"""Synthetic drone scenes: tiny person-like blobs on textured ground, deterministic by seed.

For tests and smoke runs: a 640x512 scene takes a few milliseconds, and
:func:`write_synthetic_dataset` lays a handful of them out on disk in TinyPerson, COCO or YOLO
layout so every stage (training, evaluation, detection) can run on data whose truth is known.

A person is a head over a body and legs (skin tone and clothing colours chosen among those that
stand out from the ground under it), 3 to 30 px tall, sometimes with a shadow beside the feet; its box is
exactly the extent of the drawn pixels. Ignore regions are flat grey rectangles, like
TinyPerson's erased regions; no person overlaps one.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np

from sspnet_cli.data.sample import AnnotatedImage, as_boxes
from sspnet_cli.data.writers import image_location, write_annotations, write_yolo_yaml
from sspnet_cli.errors import SSPNetError

BACKGROUNDS = ("noise", "gradient", "waves", "sand")

_CLOTHES = np.array(
    [
        (220, 30, 30), (250, 140, 20), (245, 220, 30), (30, 60, 200), (245, 245, 245),
        (20, 20, 20), (40, 160, 60), (140, 40, 170), (250, 110, 170), (0, 170, 200),
    ],
    dtype=np.float32,
)
_SKIN = np.array([(240, 200, 170), (200, 150, 110), (150, 100, 70), (95, 60, 40)], dtype=np.float32)


@dataclass(eq=False)
class SyntheticScene:
    """An RGB ``image`` (H, W, 3) uint8, its people as ``boxes`` (N, 4) float32 xyxy and its
    erased regions as ``ignore_boxes`` (M, 4) float32 xyxy."""

    image: np.ndarray
    boxes: np.ndarray
    ignore_boxes: np.ndarray


def synthetic_scene(
    width: int = 640,
    height: int = 512,
    seed: int | list[int] = 0,
    people: int | tuple[int, int] = (5, 25),
    sizes: tuple[int, int] = (3, 30),
    background: str | None = None,
    shadows: bool = True,
    ignore_regions: int | tuple[int, int] = 0,
) -> SyntheticScene:
    """One scene; the same arguments always give the same pixels and boxes.

    ``people`` and ``ignore_regions`` are counts or inclusive ``(low, high)`` ranges (fewer
    people may fit in a crowded small frame); ``sizes`` bounds the people's height in pixels;
    ``background`` is one of :data:`BACKGROUNDS` (default: drawn from the seed).
    """
    if width < 8 or height < 8:
        raise SSPNetError(f"synthetic scenes need at least 8x8 pixels, got {width}x{height}")
    lo_size, hi_size = sizes
    if not 1 <= lo_size <= hi_size:
        raise SSPNetError(f"sizes must be 1 <= low <= high, got {sizes}")
    rng = np.random.default_rng(seed)
    kind = background if background is not None else BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if kind not in _BACKGROUND:
        raise SSPNetError(f"unknown background {kind!r}; choose one of {', '.join(_BACKGROUND)}")
    canvas = _BACKGROUND[kind](rng, width, height)

    taken: list[tuple[int, int, int, int]] = []  # occupied rectangles (x1, y1, x2, y2), with margins
    ignore = []
    for _ in range(_count(rng, ignore_regions)):
        w = int(rng.integers(12, max(13, min(96, width // 3))))
        h = int(rng.integers(12, max(13, min(96, height // 3))))
        spot = _free_spot(rng, w, h, width, height, taken, margin=1)
        if spot is None:
            continue
        x, y = spot
        grey = float(canvas[y:y + h, x:x + w].mean())
        canvas[y:y + h, x:x + w] = grey
        ignore.append((x, y, x + w, y + h))

    boxes = []
    for _ in range(_count(rng, people)):
        # log-uniform heights: most people tiny, as in TinyPerson
        h = int(min(max(round(float(np.exp(rng.uniform(np.log(lo_size), np.log(hi_size))))), lo_size), hi_size, height))
        w = int(min(width, max(1, round(h * rng.uniform(0.3, 0.5)))))
        # the margin keeps the shadow (up to h // 2 + 2 px right of the box) off everything else
        spot = _free_spot(rng, w, h, width, height, taken, margin=h // 2 + 3)
        if spot is None:
            continue
        x, y = spot
        if shadows and rng.random() < 0.5:
            _draw_shadow(canvas, x, y, w, h)
        _draw_person(rng, canvas, x, y, w, h)
        boxes.append((x, y, x + w, y + h))

    image = cv2.convertScaleAbs(cv2.max(canvas, 0.0))  # saturates at 255
    return SyntheticScene(image=image, boxes=as_boxes(boxes), ignore_boxes=as_boxes(ignore))


def write_synthetic_dataset(
    root: str | Path,
    layout: str = "tinyperson",
    splits: Mapping[str, int] | None = None,
    size: tuple[int, int] = (640, 512),
    seed: int = 0,
    image_format: str = "jpg",
    people: int | tuple[int, int] = (5, 25),
    ignore_regions: int | tuple[int, int] = (0, 2),
) -> Path:
    """Write a small synthetic dataset under ``root`` in ``layout`` (``"tinyperson"``,
    ``"coco"`` as Roboflow exports it, or ``"yolo"`` with a data.yaml) and return ``root``,
    which :func:`sspnet_cli.data.open_dataset` reads back with the same boxes.

    ``splits`` maps split names to image counts (default ``{"train": 4, "valid": 2}``); ``size``
    is (width, height); ``image_format`` is ``"jpg"`` or ``"png"``. Image ``i`` of split ``s``
    is :func:`synthetic_scene` with seed ``[seed, crc32(s), i]``, so a split's images do not
    depend on the other splits.
    """
    root = Path(root)
    splits = dict(splits) if splits is not None else {"train": 4, "valid": 2}
    if image_format not in ("jpg", "png"):
        raise SSPNetError(f"image_format must be jpg or png, got {image_format!r}")
    width, height = size
    encode = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    for split, count in splits.items():
        key = zlib.crc32(split.encode("utf-8"))
        images = []
        for i in range(count):
            scene = synthetic_scene(width, height, seed=[seed, key, i], people=people, ignore_regions=ignore_regions)
            path, file_name = image_location(layout, root, split, f"{split}_{i:04d}.{image_format}")
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR), encode):
                raise SSPNetError(f"could not write {path}")
            images.append(
                AnnotatedImage(
                    path=path, image_id=i, file_name=file_name, width=width, height=height,
                    boxes=scene.boxes, ignore_boxes=scene.ignore_boxes,
                )
            )
        write_annotations(layout, root, split, images)
    if layout == "yolo":
        write_yolo_yaml(root, list(splits))
    return root


def _count(rng: np.random.Generator, spec: int | tuple[int, int]) -> int:
    if isinstance(spec, (tuple, list)):
        lo, hi = spec
        return int(rng.integers(lo, hi + 1))
    return int(spec)


def _free_spot(
    rng: np.random.Generator, w: int, h: int, width: int, height: int, taken: list[tuple[int, int, int, int]], margin: int
) -> tuple[int, int] | None:
    """A top-left corner where a ``w`` x ``h`` rectangle fits in the frame with ``margin``
    pixels of space between it and every rectangle in ``taken`` (margins included there), which
    then holds it, margin included; None after 30 tries."""
    if w > width or h > height:
        return None
    for _ in range(30):
        x = int(rng.integers(0, width - w + 1))
        y = int(rng.integers(0, height - h + 1))
        x1, y1, x2, y2 = x - margin, y - margin, x + w + margin, y + h + margin
        if all(x2 <= a or x1 >= c or y2 <= b or y1 >= d for a, b, c, d in taken):
            taken.append((x1, y1, x2, y2))
            return x, y
    return None


def _draw_person(rng: np.random.Generator, canvas: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    """Head, body and legs filling exactly the box (x, y, x + w, y + h)."""
    ground = canvas[y:y + h, x:x + w].reshape(-1, 3).mean(axis=0)
    # two of the four clothing colours that differ most from the ground under the person
    order = np.argsort(-np.abs(_CLOTHES - ground).sum(axis=1), kind="stable")
    shirt, trousers = _CLOTHES[rng.choice(order[:4], size=2, replace=False)]
    skin = _SKIN[rng.choice(np.argsort(-np.abs(_SKIN - ground).sum(axis=1), kind="stable")[:2])]
    head = max(1, round(h * 0.2))
    legs = max(1, round(h * 0.4)) if h >= 3 else 0
    hw = max(1, round(w * 0.6))
    hx = x + (w - hw) // 2
    canvas[y:y + head, hx:hx + hw] = skin
    canvas[y + head:y + h - legs, x:x + w] = shirt
    if legs:
        canvas[y + h - legs:y + h, x:x + w] = trousers
        if w >= 3:  # a gap between the legs, filled with the ground colour
            gap = x + w // 2
            canvas[y + h - legs + 1:y + h, gap:gap + (1 if w < 6 else 2)] = ground
    if h >= 8:  # sleeves a shade darker: a little texture at the larger sizes
        canvas[y + head:y + h - legs, x] *= 0.8
        canvas[y + head:y + h - legs, x + w - 1] *= 0.8


def _draw_shadow(canvas: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    """A dark band to the right of the feet, outside the box."""
    H, W = canvas.shape[:2]
    thick = max(1, h // 6)
    y0, y1 = max(0, y + h - thick), min(H, y + h)
    x0, x1 = min(W, x + w + 1), min(W, x + w + 1 + max(2, h // 2))
    canvas[y0:y1, x0:x1] *= 0.55


# Backgrounds are float32 (H, W, 3) arrays built mostly with OpenCV calls: numpy broadcasting
# over the channel axis costs several times more, and scenes must take milliseconds.


def _grain(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """Grey sensor grain of 2x2 px cells, uniform in [-scale, scale], as (H, W, 3)."""
    small = rng.random((height // 2 + 1, width // 2 + 1), dtype=np.float32)
    small = (small - 0.5) * (2 * scale)
    grain = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(grain, cv2.COLOR_GRAY2RGB)


def _blotches(rng: np.random.Generator, width: int, height: int, cell: int, base: np.ndarray, amplitude: float) -> np.ndarray:
    """``base`` colour plus colour noise of about ``cell`` px, as (H, W, 3)."""
    shape = (height // cell + 2, width // cell + 2, 3)
    small = base.astype(np.float32) + rng.uniform(-amplitude, amplitude, size=shape).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _noise_ground(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = rng.uniform(60, 170, size=3)
    return cv2.add(_blotches(rng, width, height, 48, base, 35), _grain(rng, width, height, 10))


def _gradient_ground(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    a, b = rng.uniform(40, 200, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    # the colour at the four corners; bilinear resizing fills in the linear ramp between them
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    t = corners @ np.array([np.cos(angle), np.sin(angle)])
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    small = (a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]).reshape(2, 2, 3).astype(np.float32)
    ramp = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.add(ramp, _grain(rng, width, height, 8))


def _wave_ground(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = (rng.uniform(10, 50), rng.uniform(70, 130), rng.uniform(110, 170), 0.0)
    # waves are at least 12 px long: draw them at half resolution and scale up
    sw, sh = (width + 1) // 2, (height + 1) // 2
    xs = np.arange(sw, dtype=np.float32) * 2
    ys = np.arange(sh, dtype=np.float32) * 2
    shade = np.zeros((sh, sw), dtype=np.float32)
    for _ in range(3):
        angle = rng.uniform(-0.5, 0.5) + np.pi / 2  # mostly horizontal crests
        k = 2 * np.pi / rng.uniform(12, 60)
        phase = rng.uniform(0, 2 * np.pi)
        # sin(u + v) = sin u cos v + cos u sin v: two outer products instead of H*W sines
        u = (k * np.cos(angle) * xs).astype(np.float32)
        v = (k * np.sin(angle) * ys + phase).astype(np.float32)
        shade += np.multiply.outer(np.cos(v), np.sin(u))
        shade += np.multiply.outer(np.sin(v), np.cos(u))
    crest = np.maximum(shade - 1.8, 0) * 60  # foam where the waves add up
    sea = cv2.resize(8 * shade + crest, (width, height), interpolation=cv2.INTER_LINEAR)
    sea = cv2.cvtColor(sea, cv2.COLOR_GRAY2RGB)
    return cv2.add(cv2.add(sea, base), _grain(rng, width, height, 6))


def _flat_ground(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    colour = np.round(rng.uniform(40, 220, size=3)).astype(np.float32)
    return np.full((height, width, 3), colour, dtype=np.float32)


def _sand_ground(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = np.array([rng.uniform(170, 215), rng.uniform(145, 185), rng.uniform(100, 140)])
    return cv2.add(_blotches(rng, width, height, 24, base, 18), _grain(rng, width, height, 20))


_BACKGROUND = {
    "noise": _noise_ground,
    "gradient": _gradient_ground,
    "waves": _wave_ground,
    "sand": _sand_ground,
    "flat": _flat_ground,
}
