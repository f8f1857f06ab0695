"""Precision-recall and miss-rate-vs-FPPI curves as PNG files.

matplotlib is imported inside the functions (and only its Agg canvas, never pyplot), so
importing the evaluation package stays light and no global backend is changed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

from sspnet_cli.errors import SSPNetError
from sspnet_cli.evaluation.protocol import ap_key, mr_key
from sspnet_cli.evaluation.tinyperson import EvalResult

DEFAULT_RANGES: tuple[str, ...] = ("tiny", "tiny1", "tiny2", "tiny3", "small")
_MISS_FLOOR = 1e-2


def _figure(size: tuple[float, float] = (6.0, 4.5)):  # -> (Figure, Axes)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: Union[str, Path]) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    except OSError as e:
        raise SSPNetError(f"{path}: cannot write the plot ({e.strerror or e})") from None
    return path


def plot_precision_recall(
    result: EvalResult,
    path: Union[str, Path],
    *,
    iou: float = 0.5,
    ranges: Sequence[str] = DEFAULT_RANGES,
    title: str = "",
) -> Path:
    """Write the interpolated precision-recall curves (the ones averaged into AP) at ``iou`` for
    each of ``ranges`` to ``path`` as PNG; ranges with no ground truth are skipped."""
    fig, ax = _figure()
    for name in ranges:
        curve = result.pr_curves.get(ap_key(iou, name))
        if curve is None:
            continue
        reached = curve.recall <= curve.max_recall + 1e-12
        ax.plot(curve.recall[reached], curve.precision[reached], label=f"{name}: AP {curve.ap:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or f"Precision-recall, IoU {iou:g}")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def plot_miss_rate(
    result: EvalResult,
    path: Union[str, Path],
    *,
    iou: float = 0.5,
    ranges: Sequence[str] = DEFAULT_RANGES,
    title: str = "",
) -> Path:
    """Write miss rate against false positives per image (log-log) at ``iou`` for each of
    ``ranges`` to ``path`` as PNG, marking the 9 points averaged into the MR."""
    fig, ax = _figure()
    for name in ranges:
        curve = result.mr_curves.get(mr_key(iou, name))
        if curve is None:
            continue
        # a miss rate of 0 has no place on a log axis: draw it on the bottom edge
        miss = np.clip(curve.miss_rate, _MISS_FLOOR, None)
        points = np.clip(curve.miss_rate_points, _MISS_FLOOR, None)
        (line,) = ax.step(curve.fppi, miss, where="post", label=f"{name}: MR {curve.mr:.2f}")
        ax.plot(curve.fppi_points, points, "o", ms=3, color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-3, 1e2)
    ax.set_ylim(_MISS_FLOOR, 1.05)
    ax.set_xlabel("false positives per image")
    ax.set_ylabel("miss rate")
    ax.set_title(title or f"Miss rate vs FPPI, IoU {iou:g}")
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)
