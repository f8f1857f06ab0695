"""Test doubles: a deterministic 'detector' that finds pure-red blobs, with the model's
``predict`` contract, so tiling, batching and merging are tested exactly and fast."""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn


class RedBlobModel(nn.Module):
    """Reports every 4-connected region of red pixels (R > 200, G and B < 60) as a person, score
    0.9; records the batch sizes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.batches: list[int] = []

    def predict(self, batch: torch.Tensor, scales=(1.0,), with_attention: bool = False):
        self.batches.append(batch.shape[0])
        out = []
        for img in batch.cpu().numpy():
            r, g, b = img.astype(np.int16)
            mask = ((r > 200) & (g < 60) & (b < 60)).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:]]
            out.append({
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.full((len(boxes),), 0.9),
                "labels": torch.ones(len(boxes), dtype=torch.long),
            })
        return out, []


def scene_with_blobs(width: int, height: int, blobs: list[tuple[int, int, int, int]], seed: int = 0) -> np.ndarray:
    """A grey textured RGB frame with pure-red rectangles at ``blobs`` (x1, y1, x2, y2)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(90, 140, size=(height, width, 3), dtype=np.uint8)
    for x1, y1, x2, y2 in blobs:
        img[y1:y2, x1:x2] = (255, 0, 0)
    return img


class GridModel(nn.Module):
    """Reports a 10 x 10 px box every 40 px in every tile, whatever it shows (a hallucinating
    detector), to check what the engine does with detections over nodata."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.tiles = 0

    def predict(self, batch: torch.Tensor, scales=(1.0,), with_attention: bool = False):
        self.tiles += batch.shape[0]
        h, w = batch.shape[-2:]
        ys, xs = np.meshgrid(np.arange(5, h - 10, 40), np.arange(5, w - 10, 40), indexing="ij")
        boxes = torch.tensor(np.stack([xs, ys, xs + 10, ys + 10], -1).reshape(-1, 4), dtype=torch.float32)
        det = {"boxes": boxes, "scores": torch.full((len(boxes),), 0.9), "labels": torch.ones(len(boxes), dtype=torch.long)}
        return [det] * batch.shape[0], []
