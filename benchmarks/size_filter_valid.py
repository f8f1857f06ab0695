"""What the person-size filter removes on a dataset split: false alarms removed against people lost.

    python benchmarks/size_filter_valid.py --data ../shared/data/tinyperson-rf --split valid \
        --out benchmarks/results/size_filter_valid.json [--weights CKPT]

TinyPerson frames carry no ground sample distance (GSD), so the filter cannot judge them as they
are. Each frame is given the GSD a drone's altitude would give it, estimated from its own people:
``PERSON_LONG_M`` (1.7 m) over the median longer side, in pixels, of the frame's annotated
people. The detections (``detect``'s defaults: score >= 0.3) then get ground sizes from it and go
through ``apply_size_filter`` as in ``detect`` (``--person-size 0.3,3.0``, ``drop``); a detection
is a true positive when it overlaps an annotated person at IoU >= 0.25 (the recall-by-size rule),
otherwise a false positive. The estimate is kind to the filter where a frame's people are of one
size (one altitude, little perspective) and says nothing about scenes without people.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402

PERSON_LONG_M = 1.7


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--weights", default=None, help="checkpoint [the shipped default model]")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch
    from torchvision.ops import box_iou

    from sspnet_cli import api
    from sspnet_cli.evaluation.run import ground_truth
    from sspnet_cli.geo.plausibility import PERSON_SIZE_M, apply_size_filter
    from sspnet_cli.types import Positions

    report = api.evaluate(args.weights, args.data, split=args.split, device="cpu", score_thr=0.3)
    # the annotation file itself for TinyPerson layouts, as the metrics use
    gt = ground_truth(report.dataset) if report.dataset else {"images": [], "annotations": []}
    names = {im["id"]: im["file_name"] for im in gt["images"]}
    people: dict[str, list[list[float]]] = defaultdict(list)
    for a in gt["annotations"]:
        if not (a.get("ignore") or a.get("uncertain") or a.get("iscrowd")):
            x, y, w, h = a["bbox"]
            people[Path(names[a["image_id"]]).name].append([x, y, x + w, y + h])

    judged = []
    truth = []
    for result in report.results:
        boxes = people.get(Path(result.image).name, [])
        n = len(result.detections)
        if not boxes or n == 0:
            continue
        gt_boxes = torch.tensor(boxes)
        gsd = PERSON_LONG_M / float(np.median(np.maximum(gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1]).numpy()))
        det = result.detections.boxes
        sizes = torch.stack([det[:, 2] - det[:, 0], det[:, 3] - det[:, 1]], 1).numpy() * gsd
        judged.append(dataclasses.replace(result, ground=Positions(source="pixel", sizes_m=sizes)))
        truth.append((box_iou(det, gt_boxes).max(dim=1).values >= 0.25).numpy())
    filtered, check = apply_size_filter(judged, PERSON_SIZE_M, "flag")
    tp_lost = fp_removed = tp = fp = 0
    for result, is_tp in zip(filtered, truth):
        implausible = ~np.asarray(result.ground.plausible)
        tp += int(is_tp.sum())
        fp += int((~is_tp).sum())
        tp_lost += int((implausible & is_tp).sum())
        fp_removed += int((implausible & ~is_tp).sum())
    out = {
        "benchmark": "person-size filter (0.3-3.0 m, longer side) on a split, GSD per frame from its people's median size",
        "machine": machine(),
        "weights": str(report.weights),
        "split": args.split,
        "frames_judged": len(judged),
        "detections": tp + fp, "true_positives": tp, "false_positives": fp,
        "false_positives_removed": fp_removed, "true_positives_lost": tp_lost,
        "share_of_false_positives_removed": round(fp_removed / fp, 4) if fp else None,
        "share_of_true_positives_lost": round(tp_lost / tp, 4) if tp else None,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
