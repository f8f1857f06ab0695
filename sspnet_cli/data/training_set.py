"""Training patches as a torch Dataset: read the window, apply the 70 % rule, paint ignore
regions, augment, and return torchvision's detection contract.

Ignore regions (annotations flagged ignore/uncertain/crowd, and people cut by the patch border
beyond the 70 % rule) are painted with the dataset's mean colour before augmentation, as
TinyBenchmark does, so the detector is never taught that they are background.

Item ``i`` of epoch ``e`` with seed ``s`` always gives the same output: its random generator is
seeded from (s, e, i), independent of worker processes and of what ran before.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from sspnet_cli.data.augment import AugmentConfig, TrainAugment
from sspnet_cli.data.patches import PatchRef, patch_targets
from sspnet_cli.data.sample import Dataset
from sspnet_cli.inference.sources import open_source


def dataset_mean_colour(dataset: Dataset, max_images: int = 64, side: int = 128) -> tuple[float, float, float]:
    """Mean RGB over (down-scaled reads of) up to ``max_images`` frames spread over the dataset."""
    if len(dataset) == 0:
        return (124.0, 116.0, 104.0)
    step = max(1, len(dataset) // max_images)
    sums, count = np.zeros(3), 0
    for im in dataset.images[::step][:max_images]:
        with open_source(im.path) as src:
            rgb, valid = src.read_overview(side)
        pixels = rgb.reshape(-1, 3) if valid is None else rgb[valid]
        sums += pixels.sum(0)
        count += len(pixels)
    return tuple(float(v) for v in sums / max(count, 1))  # type: ignore[return-value]


def paint(image: np.ndarray, boxes: np.ndarray, colour: Sequence[float]) -> np.ndarray:
    """Fill each box's pixel rectangle [floor(x1), ceil(x2)) x [floor(y1), ceil(y2)) with ``colour``."""
    h, w = image.shape[:2]
    fill = np.array([round(c) for c in colour], dtype=np.uint8)
    for x1, y1, x2, y2 in boxes.tolist():
        xa, ya = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        xb, yb = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
        if xb > xa and yb > ya:
            image[ya:yb, xa:xb] = fill
    return image


class PatchDataset(torch.utils.data.Dataset):
    """Augmented training patches of ``dataset`` at ``patches`` (from ``training_patches``)."""

    def __init__(
        self,
        dataset: Dataset,
        patches: Sequence[PatchRef],
        augment: bool = True,
        seed: int = 0,
        config: AugmentConfig = AugmentConfig(),
        mean_colour: Optional[Sequence[float]] = None,
    ) -> None:
        self.dataset = dataset
        self.patches = list(patches)
        self.seed = seed
        self.epoch = 0
        self.mean_colour = tuple(mean_colour) if mean_colour is not None else dataset_mean_colour(dataset)
        self.augment = TrainAugment(config, self.mean_colour) if augment else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ref = self.patches[index]
        image_info = self.dataset.images[ref.image_index]
        with open_source(image_info.path) as src:
            rgb, _ = src.read(ref.window)
        targets = patch_targets(image_info, ref.window)
        rgb = paint(rgb, targets.ignore_boxes, self.mean_colour)
        boxes = targets.boxes.astype(np.float32).reshape(-1, 4)
        if self.augment is not None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
            rgb, boxes = self.augment(rgb, boxes, rng)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        target = {"boxes": torch.from_numpy(boxes).float().reshape(-1, 4), "labels": torch.ones(len(boxes), dtype=torch.int64)}
        return image, target


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """A batch as (list of images, list of targets): images may differ in size (multi-scale)."""
    return [b[0] for b in batch], [b[1] for b in batch]
