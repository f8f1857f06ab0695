"""Learning-rate schedule: linear warm-up, then step decay at epoch boundaries (mmdetection's
``warmup='linear'`` + ``policy='step'``), as a function of the global iteration."""
from __future__ import annotations

from typing import Sequence


def lr_factor(step: int, iters_per_epoch: int, warmup_iters: int, warmup_ratio: float, lr_steps: Sequence[int]) -> float:
    """Multiplier of the base learning rate at (0-based) iteration ``step``.

    Warm-up goes linearly from ``warmup_ratio`` to 1 over ``warmup_iters`` iterations; after
    epoch ``e`` in ``lr_steps`` the rate is divided by 10 (cumulatively)."""
    epoch = step // max(iters_per_epoch, 1)
    decay = 0.1 ** sum(1 for s in lr_steps if epoch >= s)
    if step < warmup_iters:
        k = (1 - step / warmup_iters) * (1 - warmup_ratio)
        return decay * (1 - k)
    return decay
