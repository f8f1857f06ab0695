"""Model cost: parameters, one 640x512 eval forward, one training step (batch of 2 patches).

    python benchmarks/bench_model.py --out benchmarks/results/model_cpu.json [--device cpu] [--configs r50-sspnet,mnv2-sspnet]

Eval forwards use an untrained model whose classifier is biased so that post-processing sees
realistic numbers of boxes; training steps use two 640x512 patches with 40 people each. Times
are the median of ``--repeats`` runs after one warm-up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402
from sspnet_cli.config import ModelConfig  # noqa: E402
from sspnet_cli.model.build import build_from_config  # noqa: E402
from sspnet_cli.model.summary import describe  # noqa: E402

CONFIGS = {
    "r50-sspnet": dict(backbone="resnet50"),
    "r50-fpn": dict(backbone="resnet50", neck="fpn"),
    "mnv2-sspnet": dict(backbone="mobilenet_v2"),
    "mnv2-fpn": dict(backbone="mobilenet_v2", neck="fpn"),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    fn()
    sync(device)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        runs.append(time.perf_counter() - t)
    return {"median_s": round(statistics.median(runs), 4), "runs_s": [round(r, 4) for r in runs]}


def people(n: int, g: torch.Generator) -> dict:
    xy = torch.rand(n, 2, generator=g) * torch.tensor([600.0, 480.0])
    wh = 4 + torch.rand(n, 2, generator=g) * 20
    return {"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.ones(n, dtype=torch.long)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--configs", default="r50-sspnet,r50-fpn,mnv2-sspnet")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--amp", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    report = {"benchmark": "model cost per 640x512 patch", "machine": machine(), "device": str(device), "results": {}}
    for name in args.configs.split(","):
        torch.manual_seed(0)
        cfg = ModelConfig(**CONFIGS[name])
        if cfg.backbone != "mobilenet_v2":  # no ImageNet weights: the from-scratch setting train uses
            cfg.backbone_norm, cfg.frozen_stages = "bn", 0
        model = build_from_config(cfg).to(device)
        desc = describe(model)
        with torch.no_grad():
            model.roi_heads.cls_score.bias.copy_(torch.tensor([-1.0, 1.0]))
        batch = (torch.rand(1, 3, 512, 640, generator=g) * 255).to(torch.uint8).to(device)
        model.eval()
        autocast = torch.autocast("cuda", dtype=torch.float16) if args.amp and device.type == "cuda" else torch.autocast("cpu", enabled=False)

        def forward():
            with autocast:
                model.predict(batch)

        eval_t = timed(forward, device, args.repeats)
        model.train()
        images = [torch.rand(3, 512, 640, generator=g).to(device) for _ in range(2)]
        targets = [{k: v.to(device) for k, v in people(40, g).items()} for _ in range(2)]
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        scaler = torch.amp.GradScaler("cuda", enabled=args.amp and device.type == "cuda")

        def step():
            with autocast:
                loss = sum(model(images, targets).values())
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        step_t = timed(step, device, args.repeats)
        report["results"][name] = {
            "parameters": desc["parameters"],
            "eval_forward_640x512": eval_t,
            "train_step_batch2_640x512": step_t,
            "train_patches_per_s": round(2 / step_t["median_s"], 3),
        }
        print(name, json.dumps(report["results"][name]))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
