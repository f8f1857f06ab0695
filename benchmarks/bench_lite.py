"""Choosing SSPNet-Lite's widths: eval forward per 640x512 tile and training speed on real patches.

    python benchmarks/bench_lite.py --data ../shared/data/tinyperson-rf --out benchmarks/results/lite_widths_cpu.json

For every (neck channels, R-CNN FC width, test proposals) in ``--configs``: one eval forward of
a real sample frame's first 640x512 tile (untrained model, classifier biased so post-processing
sees many boxes, as ``bench_model.py``), and training steps (batch 2) on real TinyPerson-RF
patches with the recipe's augmentation (made beforehand; the augmentation's own cost per patch
is measured once and reported apart). Times are medians; torch's default threads.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402
from sspnet_cli.config import ModelConfig  # noqa: E402
from sspnet_cli.data import PatchDataset, open_dataset, training_patches  # noqa: E402
from sspnet_cli.data.training_set import collate  # noqa: E402
from sspnet_cli.model.build import build_from_config  # noqa: E402
from sspnet_cli.model.summary import describe  # noqa: E402

BACKBONE = REPO / "weights" / "mobilenet_v2_imagenet_features.pt"


def parse(spec: str) -> tuple[int, int, int]:
    """``W/F/P``: neck channels, FC width, test proposals."""
    w, f, p = (int(v) for v in spec.split("/"))
    return w, f, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", default="64/1024/1000,64/256/1000,64/256/300,48/256/300,96/256/300,128/256/300")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ds = open_dataset(args.data, split="train")
    patches = training_patches(ds.images, (640, 512), 30)
    pd = PatchDataset(ds, patches, seed=0)
    picks = range(0, len(patches), max(1, len(patches) // (2 * args.steps + 2)))
    t = time.perf_counter()
    items = [pd[i] for i in picks][: 2 * args.steps + 2]
    data_s = (time.perf_counter() - t) / len(items)
    people = statistics.mean(len(tg["boxes"]) for _, tg in items)
    frame = cv2.cvtColor(cv2.imread(str(REPO / "samples" / "bb_V0004_I0001320.jpg")), cv2.COLOR_BGR2RGB)
    tile = torch.from_numpy(frame[:512, :640]).permute(2, 0, 1)[None].contiguous()
    report = {
        "benchmark": "SSPNet-Lite widths: eval forward per 640x512 tile, training step on real patches",
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "augmentation_s_per_patch": round(data_s, 4),
        "people_per_patch": round(people, 1),
        "results": {},
    }
    for spec in args.configs.split(","):
        w, f, p = parse(spec)
        torch.manual_seed(0)
        cfg = ModelConfig(backbone="mobilenet_v2", neck_channels=w)
        cfg.roi.fc_dim = f
        cfg.rpn.post_nms_top_n_test = p
        model = build_from_config(cfg, str(BACKBONE))
        with torch.no_grad():
            model.roi_heads.cls_score.bias.copy_(torch.tensor([-1.0, 1.0]))
        model.eval()
        model.predict(tile)
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            model.predict(tile)
            runs.append(time.perf_counter() - t)
        model.train()
        opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=1e-4, momentum=0.9)
        steps = []
        for i in range(args.steps + 1):
            images, targets = collate(items[2 * i : 2 * i + 2])
            t = time.perf_counter()
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:  # the first step warms up
                steps.append(time.perf_counter() - t)
        step_s = statistics.median(steps)
        rec = {
            "neck_channels": w,
            "fc_dim": f,
            "test_proposals": p,
            "parameters": describe(model)["parameters"]["total"],
            "eval_forward_s": round(statistics.median(runs), 4),
            "train_step_batch2_s": round(step_s, 4),
            "train_patches_per_s_model_only": round(2 / step_s, 3),
            "train_patches_per_s_with_augmentation_in_process": round(2 / (step_s + 2 * data_s), 3),
        }
        report["results"][spec] = rec
        print(spec, json.dumps(rec), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
