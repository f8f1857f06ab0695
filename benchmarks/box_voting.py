"""AP with box voting at several IoU thresholds (0: off), one checkpoint, one split.

    python benchmarks/box_voting.py --weights CKPT --data ../shared/data/tinyperson-rf --split valid \
        --ious 0,0.5,0.7 --out benchmarks/results/box_voting_valid.json

Each threshold is a full ``api.evaluate`` run (frames resized as the checkpoint trained) with a copy of the
checkpoint whose ``roi.box_voting_iou`` is replaced. Box voting: after soft-NMS each kept box becomes the
score-weighted mean of the candidates overlapping it by IoU >= the threshold (model/roi_heads.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402
from sspnet_cli.api import evaluate  # noqa: E402
from sspnet_cli.model.checkpoint import read_checkpoint  # noqa: E402

KEYS = ("AP50_tiny", "AP25_tiny", "AP75_tiny", "AP50_tiny1", "AP50_tiny2", "AP50_tiny3", "AP50_small", "MR50_tiny")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--ious", default="0,0.5,0.7")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ckpt = read_checkpoint(args.weights)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for iou in (float(v) for v in args.ious.split(",")):
            ckpt["config"]["roi"]["box_voting_iou"] = iou
            variant = Path(tmp) / f"voting-{iou}.pt"
            torch.save(ckpt, variant)
            t = time.perf_counter()
            metrics = evaluate(variant, data=args.data, split=args.split, device="cpu").result.metrics
            runs.append({"box_voting_iou": iou, "seconds": round(time.perf_counter() - t, 1), **{k: metrics.get(k) for k in KEYS}})
            print(json.dumps(runs[-1]), flush=True)
    report = {"benchmark": "box voting threshold against AP", "machine": machine(), "weights": args.weights,
              "split": args.split, "runs": runs}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
