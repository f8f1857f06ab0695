"""`train --amp` on the CPU: bf16 autocast against fp32, the training step's time and what it does to the gradients.

    python benchmarks/bench_amp_cpu.py --data ../shared/data/tinyperson-rf --weights CKPT \
        --out benchmarks/results/amp_cpu.json [--threads 1] [--steps 6]

One lite checkpoint in training mode; training steps of 2 real TinyPerson-RF patches (the
recipe's augmentation, made beforehand), fp32 and bf16 interleaved so that both see the same load;
the first pair warms up. Then, on 3 batches, the losses and the gradient of fp32 and bf16 from
the same random state (the samplers draw the same way): cosine similarity and norm ratio.
bf16 is only fast on CPUs with bf16 units (AVX512-BF16, AMX); elsewhere torch emulates it.
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
from sspnet_cli.config import training_frame_size  # noqa: E402
from sspnet_cli.data import PatchDataset, open_dataset, training_patches  # noqa: E402
from sspnet_cli.data.training_set import collate  # noqa: E402
from sspnet_cli.model.checkpoint import load_model, read_checkpoint  # noqa: E402
from sspnet_cli.training.precision import cpu_has_bf16  # noqa: E402


def autocast(mode: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frame_size = training_frame_size(read_checkpoint(args.weights).get("meta", {}))
    images = open_dataset(args.data, split="train").images[:20]
    if frame_size:  # the patches the checkpoint's run trained on
        images = [im.resized(*frame_size) for im in images]
    patches = training_patches(images, (640, 512), 30)
    pd = PatchDataset(images, patches, seed=0, frame_size=frame_size)
    items = [pd[i] for i in range(2 * (args.steps + 1))]
    model = load_model(args.weights)[0].train()
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=1e-7, momentum=0.9)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for i in range(args.steps + 1):
        images, targets = collate(items[2 * i : 2 * i + 2])
        for mode in ("fp32", "bf16"):
            t = time.perf_counter()
            with autocast(mode):
                loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                times[mode].append(time.perf_counter() - t)
    agreement = []
    for b in range(3):
        images, targets = collate(items[2 * b : 2 * b + 2])
        grads, losses = {}, {}
        for mode in ("fp32", "bf16"):
            torch.manual_seed(b)
            model.zero_grad()
            with autocast(mode):
                parts = model(images, targets)
            sum(parts.values()).backward()
            losses[mode] = {k: round(float(v.detach()), 4) for k, v in parts.items()}
            grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        cos = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
        agreement.append({
            "losses": losses,
            "grad_cosine": round(float(cos), 4),
            "grad_norm_ratio_bf16_over_fp32": round(float(grads["bf16"].norm() / grads["fp32"].norm()), 4),
        })
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    report = {
        "benchmark": "train step (2 real patches) in fp32 and with bf16 autocast on the CPU, interleaved",
        "machine": machine(),
        "cpu_has_bf16_units": cpu_has_bf16(),
        "threads": args.threads,
        "weights": str(args.weights),
        "frame_size_of_the_run": frame_size,
        "step_s": {"fp32": [round(t, 3) for t in times["fp32"]], "bf16": [round(t, 3) for t in times["bf16"]]},
        "median_step_s": {"fp32": round(fp32, 3), "bf16": round(bf16, 3)},
        "speedup": round(fp32 / bf16, 2),
        "gradient_agreement": agreement,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("median_step_s", "speedup")}), [a["grad_cosine"] for a in agreement])


if __name__ == "__main__":
    main()
