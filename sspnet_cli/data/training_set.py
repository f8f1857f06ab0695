"""Training patches as a torch ``Dataset``: read the window, paint the ignore regions, augment.

For each :class:`~sspnet_cli.data.patches.PatchRef` (from
:func:`~sspnet_cli.data.patches.training_patches`), :class:`PatchDataset` reads the window with
:func:`~sspnet_cli.imagery.sources.open_source` (pixels past the frame are 0, as detection
sees them), keeps the people by the 70 % rule (:func:`~sspnet_cli.data.patches.patch_targets`),
paints the patch's ignore regions (the dataset's ignore / uncertain / crowd boxes and the
people cut by the patch border) with the dataset mean colour, then augments
(:class:`~sspnet_cli.data.augment.TrainAugment`).

Painting is TinyBenchmark's choice (its ``*_erase`` annotations): left as they are, those
regions would be sampled as background although people may be in them; painted flat they teach
nothing either way. Pixels of people kept in the patch are never painted, even where an ignore
region overlaps them.

An item is ``(image, target)`` in torchvision's detection contract: ``image`` float32
(3, H, W) in [0, 1], ``target`` ``{"boxes": float32 (N, 4) xyxy, "labels": int64 (N,) all 1}``.
Item ``i`` of epoch ``e`` with seed ``s`` draws its augmentation from
``numpy.random.SeedSequence([s, e, i])``: the same triple always gives the same tensors, in any
worker, in any order, after a resume.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from sspnet_cli.data.augment import Colour, Patch, TrainAugment
from sspnet_cli.data.patches import MIN_VISIBLE, PatchRef, patch_targets
from sspnet_cli.data.sample import AnnotatedImage
from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.imagery.sources import ImageSource, open_source, resized_source

Target = dict[str, torch.Tensor]
#: anything that augments like :class:`TrainAugment`: ``augment(patch, rng) -> Patch``
AugmentFn = Callable[[Patch, np.random.Generator], Patch]

#: frames :func:`dataset_mean_colour` looks at by default
MEAN_COLOUR_IMAGES = 64
#: longest side of the reduced frame it averages (the mean barely changes with the scale)
MEAN_COLOUR_SIDE = 256


def dataset_mean_colour(
    images: Sequence[AnnotatedImage], max_images: int = MEAN_COLOUR_IMAGES, side: int = MEAN_COLOUR_SIDE
) -> Colour:
    """Mean RGB (0-255) of up to ``max_images`` frames spread evenly over ``images``, each
    reduced to at most ``side`` px and weighted equally; invalid (nodata) pixels left out.
    Deterministic: the same images give the same colour."""
    if len(images) == 0:
        raise SSPNetError("cannot measure the mean colour of a dataset without images")
    if max_images < 1:
        raise SSPNetError(f"max_images must be at least 1, got {max_images}")
    picks = np.unique(np.linspace(0, len(images) - 1, min(len(images), max_images)).round().astype(int))
    means = []
    for i in picks:
        with open_source(images[int(i)].path) as source:
            rgb, valid = source.read_overview(side)
        pixels = rgb.reshape(-1, 3) if valid is None else rgb[valid]
        if len(pixels):
            means.append(pixels.mean(axis=0, dtype=np.float64))
    if not means:
        raise SSPNetError("no valid pixels in the sampled frames to measure the mean colour")
    r, g, b = np.mean(means, axis=0)
    return float(r), float(g), float(b)


def _pixel_span(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer pixel ranges (x0, y0, x1, y1) of every pixel each box touches, within the image."""
    span = np.concatenate([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])], axis=1)
    return np.clip(span, 0, [width, height, width, height]).astype(np.int64)


def paint_regions(
    image: np.ndarray, regions: np.ndarray, colour: Colour, keep: Optional[np.ndarray] = None
) -> np.ndarray:
    """``image`` with every pixel that ``regions`` (N, 4) xyxy touch set to ``colour`` (rounded),
    except the pixels of the boxes in ``keep``. Returns a new array when anything is painted,
    else ``image`` itself."""
    if len(regions) == 0:
        return image
    h, w = image.shape[:2]
    out = image.copy()
    fill = np.array([int(round(c)) for c in colour], dtype=np.uint8)
    for x0, y0, x1, y1 in _pixel_span(regions, w, h):
        out[y0:y1, x0:x1] = fill
    if keep is not None:
        for x0, y0, x1, y1 in _pixel_span(keep, w, h):
            out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out


def to_tensors(patch: Patch) -> tuple[torch.Tensor, Target]:
    """``patch`` in torchvision's detection contract: image float32 (3, H, W) in [0, 1] and
    ``{"boxes": float32 (N, 4), "labels": int64 (N,) of 1}``."""
    image = torch.from_numpy(np.ascontiguousarray(patch.image.transpose(2, 0, 1))).float().div_(255)
    boxes = torch.from_numpy(np.array(patch.boxes, dtype=np.float32).reshape(-1, 4))
    return image, {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}


def collate(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """``DataLoader`` collate function: a list of images and a list of targets, as the
    detection model takes them (images of different sizes are fine)."""
    return [image for image, _ in batch], [target for _, target in batch]


class PatchDataset(torch.utils.data.Dataset):
    """Augmented training patches of ``images`` (a :class:`~sspnet_cli.data.sample.Dataset` or
    a list of :class:`~sspnet_cli.data.sample.AnnotatedImage`), one item per ``patches`` entry.

    ``augment``: True for the reference recipe (:class:`TrainAugment` defaults), False for none,
    or a :class:`TrainAugment` (when its rotation fill is None the dataset mean colour is used)
    or any callable ``(patch, rng) -> Patch``.
    ``mean_colour`` (RGB 0-255) paints the ignore regions; default: measured by
    :func:`dataset_mean_colour` (reads up to 64 frames once). ``seed`` and the epoch (see
    :meth:`set_epoch`) fix the augmentation of every item. ``min_visible`` is the 70 % rule.
    ``frame_size`` (width, height): every stored frame is resized to it before patches are cut;
    ``images`` (and ``patches``) must then already describe the resized frames
    (:meth:`AnnotatedImage.resized`), e.g. TinyPerson-RF's squeezed 640x640 frames back to 16:9.
    """

    def __init__(
        self,
        images: Sequence[AnnotatedImage],
        patches: Sequence[PatchRef],
        *,
        augment: Union[bool, AugmentFn] = True,
        mean_colour: Optional[Sequence[float]] = None,
        seed: int = 0,
        epoch: int = 0,
        min_visible: float = MIN_VISIBLE,
        frame_size: Optional[tuple[int, int]] = None,
    ) -> None:
        self.images = images
        self.frame_size = None if frame_size is None else (int(frame_size[0]), int(frame_size[1]))
        self.patches = [PatchRef(int(i), w) for i, w in patches]
        bad = [ref for ref in self.patches if not 0 <= ref.image_index < len(images)]
        if bad:
            raise SSPNetError(f"{len(bad)} patches name images outside the dataset ({len(images)} images), e.g. {bad[0]}")
        if seed < 0:
            raise SSPNetError(f"seed must be >= 0, got {seed}")
        if mean_colour is None:
            self.mean_colour: Colour = dataset_mean_colour(images) if self.patches else (0.0, 0.0, 0.0)
        else:
            r, g, b = (float(c) for c in mean_colour)
            self.mean_colour = (r, g, b)
        if augment is True:
            augment = TrainAugment()
        if augment is False:
            augment = None
        elif isinstance(augment, TrainAugment) and augment.shift_scale_rotate.fill is None:
            augment = replace(augment, shift_scale_rotate=replace(augment.shift_scale_rotate, fill=self.mean_colour))
        elif not callable(augment):
            raise SSPNetError(f"augment must be True, False or a callable (patch, rng) -> Patch, got {augment!r}")
        self.augment: Optional[AugmentFn] = augment
        self.seed = int(seed)
        self.epoch = 0
        self.set_epoch(epoch)
        self.min_visible = min_visible
        self._source: Optional[tuple[int, ImageSource]] = None

    def __len__(self) -> int:
        return len(self.patches)

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentations of ``epoch`` from now on (call it before each epoch; with
        worker processes, before the ``DataLoader`` iterator is created)."""
        if epoch < 0:
            raise SSPNetError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator item ``index`` draws from in the current epoch."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index)]))

    def patch(self, index: int) -> Patch:
        """Item ``index`` as a numpy :class:`Patch` (uint8 image, people, ignore regions), after
        painting and augmentation: what :meth:`__getitem__` turns into tensors."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"patch {index} out of range for {len(self)} patches")
        index %= len(self)
        ref = self.patches[index]
        image = self.images[ref.image_index]
        rgb, _ = self._frame(ref.image_index).read(ref.window)
        targets = patch_targets(image, ref.window, self.min_visible)
        rgb = paint_regions(rgb, targets.ignore_boxes, self.mean_colour, keep=targets.boxes)
        patch = Patch(rgb, targets.boxes, targets.ignore_boxes)
        if self.augment is not None:
            patch = self.augment(patch, self.rng(index))
        return patch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        return to_tensors(self.patch(index))

    def _frame(self, image_index: int) -> ImageSource:
        """The open source of frame ``image_index``; the last one stays decoded, since patches
        come image by image unless shuffled."""
        if self._source is not None and self._source[0] == image_index:
            return self._source[1]
        self.close()
        image = self.images[image_index]
        source = open_source(image.path)
        if self.frame_size is not None:
            source = resized_source(source, *self.frame_size)
        if (source.width, source.height) != (image.width, image.height):
            source.close()
            raise InputError(
                image.path, f"image is {source.width}x{source.height} but its annotations say {image.width}x{image.height}"
            )
        self._source = (image_index, source)
        return source

    def close(self) -> None:
        """Release the cached frame (reopened on the next item)."""
        if self._source is not None:
            self._source[1].close()
            self._source = None

    def __getstate__(self) -> dict[str, Any]:
        # worker processes start without the parent's decoded frame
        state = self.__dict__.copy()
        state["_source"] = None
        return state

    def __repr__(self) -> str:
        colour = ", ".join(f"{c:.1f}" for c in self.mean_colour)
        return (
            f"PatchDataset({len(self)} patches of {len(self.images)} images, augment={'off' if self.augment is None else 'on'}, "
            f"mean_colour=({colour}), seed={self.seed}, epoch={self.epoch})"
        )
