"""The three detectors' cost on the CPU: one training step (batch of two 640x512 patches) and one
640x512 patch of inference, for Faster R-CNN, Cascade R-CNN and RetinaNet on the default
ResNet-50 + SSPNet neck.

    python benchmarks/bench_detectors.py --out benchmarks/results/detectors_cpu.json [--repeats 3]

The models are untrained (no ImageNet weights ship for ResNet-50, so the backbone is set up as
``sspnet train`` sets it up from scratch: training BatchNorm, nothing frozen). So that
post-processing sees as many boxes as it can, the classifiers are biased to pass every candidate
above the 0.05 score threshold: Faster and Cascade R-CNN score all 1000 proposals, RetinaNet
keeps its top 1000 per level; each then runs soft-NMS to the 500 cap. Training steps use 40
people per patch. Each figure is timed ``--repeats`` times after one warm-up; other jobs may share
the CPU, so the minimum is the figure to compare and the median shows the spread.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402
from sspnet_cli.config import ModelConfig  # noqa: E402
from sspnet_cli.model.build import build_from_config  # noqa: E402
from sspnet_cli.model.summary import describe  # noqa: E402

DETECTORS = ("faster_rcnn", "cascade_rcnn", "retinanet")


def timed(fn: Callable[[], object], repeats: int) -> dict:
    """Seconds of ``repeats`` calls after one warm-up: minimum, median and every run."""
    fn()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"min_s": round(min(runs), 3), "median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs]}


def people(n: int, g: torch.Generator) -> dict:
    xy = torch.rand(n, 2, generator=g) * torch.tensor([600.0, 480.0])
    wh = 4 + torch.rand(n, 2, generator=g) * 20
    return {"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.ones(n, dtype=torch.long)}


def pass_everything(model: torch.nn.Module) -> None:
    """Bias an untrained model's classifiers so every candidate clears the score threshold."""
    with torch.no_grad():
        if model.cfg.detector == "retinanet":
            model.head.classification_head.cls_logits.bias.zero_()
            return
        heads = model.roi_heads.stages if model.cfg.detector == "cascade_rcnn" else [model.roi_heads]
        for head in heads:
            head.cls_score.bias.copy_(torch.tensor([-1.0, 1.0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    report = {
        "benchmark": "detector cost on the CPU: training step (batch 2 x 640x512) and inference (one 640x512 patch)",
        "machine": machine(),
        "device": "cpu",
        "model": "ResNet-50 + SSPNet neck (256 channels), untrained, from-scratch BatchNorm setting; "
        "classifiers biased so post-processing runs at its caps",
        "repeats": args.repeats,
        "results": {},
    }
    patch = (torch.rand(1, 3, 512, 640, generator=g) * 255).to(torch.uint8)
    images = [torch.rand(3, 512, 640, generator=g) for _ in range(2)]
    targets = [people(40, g) for _ in range(2)]
    for name in args.detectors.split(","):
        torch.manual_seed(0)
        cfg = ModelConfig(detector=name, backbone_norm="bn", frozen_stages=0)
        model = build_from_config(cfg)
        pass_everything(model)
        model.eval()
        detections = [0]

        def infer() -> None:
            dets, _ = model.predict(patch)
            detections[0] = len(dets[0]["boxes"])

        infer_t = timed(infer, args.repeats)
        model.train()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

        def step() -> None:
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()

        step_t = timed(step, args.repeats)
        report["results"][name] = {
            "parameters": describe(model)["parameters"],
            "train_step_batch2_640x512_s": step_t,
            "inference_patch_640x512_s": infer_t,
            "detections_per_patch": detections[0],
        }
        print(name, json.dumps(report["results"][name]), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
