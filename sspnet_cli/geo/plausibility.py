"""Person-size plausibility: a box whose size on the ground no person has is likely a false alarm.

Where the ground sample distance is known (a georeferenced raster's pixels, or a drone photo's
camera model, box by box), each detection's ground size is measured (metres along the box's
width and height, :attr:`Positions.sizes_m`). A person seen from above or the side has a longer
side between about 0.3 m (a child's shoulders or a head and shoulders seen from straight above)
and about 2 m (a person lying down, with some slack for the box): the default range
:data:`PERSON_SIZE_M` is 0.3-3.0 m along the longer side. ``flag`` marks the others
(``size_plausible: false``), ``drop`` removes them, ``off`` leaves everything alone. Boxes whose
ground size is unknown are never judged.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.positions import positions_of
from sspnet_cli.types import ImageResult

PERSON_SIZE_M = (0.3, 3.0)
SIZE_FILTERS = ("flag", "drop", "off")


@dataclass
class SizeCheck:
    """What the size filter did: boxes judged (ground size known), found implausible, dropped."""

    judged: int = 0
    implausible: int = 0
    dropped: int = 0


def check_person_size(size: Sequence[float], mode: str) -> tuple[float, float]:
    """The range (metres) and mode checked before any work; one-line errors."""
    if mode not in SIZE_FILTERS:
        raise SSPNetError(f"--size-filter must be one of {', '.join(SIZE_FILTERS)}, got {mode!r}")
    low, high = (float(v) for v in size)
    if not (0 <= low < high) or not np.isfinite(high):
        raise SSPNetError(f"--person-size must be MIN,MAX metres with 0 <= MIN < MAX, got {low:g},{high:g}")
    return low, high


def apply_size_filter(
    results: Sequence[ImageResult], size: Sequence[float] = PERSON_SIZE_M, mode: str = "flag"
) -> tuple[list[ImageResult], SizeCheck]:
    """``results`` with every located detection's ground size judged against ``size`` (longer
    side, metres): ``flag`` sets :attr:`Positions.plausible`, ``drop`` removes the implausible
    boxes (and their positions), ``off`` changes nothing."""
    low, high = check_person_size(size, mode)
    check = SizeCheck()
    if mode == "off":
        return list(results), check
    out = []
    for result in results:
        positions = positions_of(result)
        n = len(result.detections)
        if positions.sizes_m is None or n == 0:
            out.append(result)
            continue
        longer = np.asarray(positions.sizes_m, dtype=np.float64).reshape(n, 2).max(axis=1)
        known = np.isfinite(longer)
        plausible = ~known | ((longer >= low) & (longer <= high))
        check.judged += int(known.sum())
        check.implausible += int((~plausible).sum())
        positions = dataclasses.replace(positions, plausible=plausible)
        if mode == "drop" and not plausible.all():
            keep = plausible
            check.dropped += int((~keep).sum())
            import torch

            index = torch.from_numpy(np.flatnonzero(keep))
            result = dataclasses.replace(result, detections=result.detections.select(index))
            positions = positions.select(keep)
        out.append(dataclasses.replace(result, ground=positions))
    return out, check
