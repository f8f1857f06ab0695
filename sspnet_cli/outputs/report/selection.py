"""Which detections the review page lists, and the counts the summary shows.

Every detection scoring at least the report threshold is a candidate; candidates are ordered
best score first (ties: input order of the images, then the detection's order in its image) and
the first ``report_max`` are listed. The rest are counted as left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from sspnet_cli.outputs.values import detection_arrays
from sspnet_cli.types import ImageResult

#: lower edges of the score bands in the summary, highest first
SCORE_BANDS = (0.9, 0.7, 0.5, 0.3, 0.0)


@dataclass
class Entry:
    """One listed detection. ``rank`` counts from 1 (best score); ``result``/``index`` locate it
    in the results; the position is filled in once the image's positions are known."""

    rank: int
    result: int
    index: int
    image: str
    box: tuple[float, float, float, float]
    score: float
    lonlat: Optional[tuple[float, float]] = None
    position_source: Optional[str] = None
    error_m: Optional[float] = None
    crop: Optional[str] = None  # path of the crop inside the report, when the image was readable
    size_m: Optional[tuple[float, float]] = None  # the box's size on the ground, where known
    plausible: Optional[bool] = None  # the size filter's verdict (None: not judged)
    quality: Optional[str] = None  # "oblique" for a far-off-nadir photo
    overlay: Optional[str] = None  # path of its image's overlay inside the report


@dataclass
class Selection:
    """The listed entries and the counts around them."""

    entries: list[Entry]
    total: int  # detections in the results
    above: int  # of those, scoring at least the threshold
    threshold: float
    limit: int
    bands: list[tuple[str, int]] = field(default_factory=list)  # (label, count), best band first

    @property
    def left_out(self) -> int:
        """Detections above the threshold not listed because of ``limit``."""
        return self.above - len(self.entries)


def score_bands(scores: np.ndarray) -> list[tuple[str, int]]:
    """Counts per band of :data:`SCORE_BANDS`, labelled like ``"0.70-0.90"`` (``">= 0.90"``
    for the top band); the bottom band only when it holds something."""
    out = []
    upper: Optional[float] = None
    for lower in SCORE_BANDS:
        inside = scores >= lower if upper is None else (scores >= lower) & (scores < upper)
        label = f">= {lower:.2f}" if upper is None else f"{lower:.2f}-{upper:.2f}"
        count = int(inside.sum())
        if lower > 0 or count:
            out.append((label, count))
        upper = lower
    return out


def select_entries(results: Sequence[ImageResult], threshold: float, limit: int) -> Selection:
    """The entries of the review list (see the module docstring)."""
    per_result = [detection_arrays(r) for r in results]
    all_scores = np.concatenate([s for _, s, _ in per_result]) if per_result else np.zeros(0)
    candidates = []
    for r, (boxes, scores, _) in enumerate(per_result):
        for i in np.flatnonzero(scores >= threshold):
            candidates.append((-float(scores[i]), r, int(i)))
    candidates.sort()
    entries = []
    for rank, (neg_score, r, i) in enumerate(candidates[: max(0, limit)], start=1):
        box = tuple(float(v) for v in per_result[r][0][i])
        entries.append(Entry(rank, r, i, results[r].image, box, -neg_score))  # type: ignore[arg-type]
    return Selection(entries, int(all_scores.size), len(candidates), float(threshold), int(limit), score_bands(all_scores))
