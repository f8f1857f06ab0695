"""Draw a training run's curves (loss by component, valid AP50-tiny and MR50-tiny per epoch).

    python docs/plot_training.py runs/lite/metrics.jsonl --out weights/training_curves.png
    python docs/plot_training.py runs/a/metrics.jsonl runs/b/metrics.jsonl --out curves.png

Reads the ``metrics.jsonl`` that ``sspnet train`` writes in its run folder. Several files are
stages of one model (the second ``--init`` from the first's best.pt): drawn one after another,
steps and epochs running on, with a dotted line where a stage starts.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSSES = ("loss", "loss_rpn_cls", "loss_rpn_box", "loss_rcnn_cls", "loss_rcnn_box", "loss_att_dice", "loss_att_bce")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("metrics", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    steps: list[dict] = []
    vals: list[dict] = []
    starts: list[tuple[int, int]] = []  # (step, epoch) where each later stage begins
    step0 = epoch0 = 0
    for path in args.metrics:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if step0:
            starts.append((step0, epoch0))
        steps += [dict(r, step=r["step"] + step0) for r in records if "loss" in r]
        vals += [dict(r, epoch=r["epoch"] + epoch0) for r in records if "val" in r]
        step0 = max([r["step"] for r in steps] or [0])
        epoch0 = max([r["epoch"] + 1 for r in vals] or [0])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in LOSSES:
        xs = [r["step"] for r in steps if key in r]
        ys = [r[key] for r in steps if key in r]
        if xs:
            left.plot(xs, _smooth(ys), label=key, linewidth=2 if key == "loss" else 1)
    for step, _ in starts:
        left.axvline(step, color="grey", linestyle=":", linewidth=1)
    left.set_xlabel("step (batch of 2 patches)")
    left.set_ylabel("loss (mean over 10 steps, smoothed)")
    left.set_yscale("log")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    epochs = [r["epoch"] + 1 for r in vals]
    right.plot(epochs, [r["val"].get("AP50_tiny") for r in vals], "o-", label="AP50-tiny")
    right.plot(epochs, [r["val"].get("AP25_tiny") for r in vals], "s--", label="AP25-tiny")
    right.plot(epochs, [r["val"].get("MR50_tiny") for r in vals], "^:", label="MR50-tiny (lower is better)")
    for _, epoch in starts:
        right.axvline(epoch + 0.5, color="grey", linestyle=":", linewidth=1)
    right.set_xlabel("epoch")
    right.set_ylabel("valid split, %")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


def _smooth(values: list[float], k: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        window = values[max(0, i - k + 1) : i + 1]
        out.append(sum(window) / len(window))
    return out


if __name__ == "__main__":
    main()
