"""Detect throughput on a GPU: megapixels per second at batch 1/4/8/16, fp32 and fp16, one process.

    python benchmarks/bench_gpu.py --out benchmarks/results/gpu_<name>.json [--weights CKPT] [--frames 8]

Ready for the day a GPU is lent (the CPU sessions that wrote it had none). The frames are
20-megapixel JPEGs (5472x3648, the samples tiled: ``bench_vs_sahi.make_20mp``) decoded by the
pipeline as in the field; each setting runs once to warm up (cuDNN autotuning, allocator), then
``--repeats`` times; the minimum counts. Also recorded: peak GPU memory per setting
(``torch.cuda.max_memory_allocated``) and the detections found, which must agree between batch
sizes (fp16 may differ slightly).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_vs_sahi import make_20mp, megapixels  # noqa: E402
from machine import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="checkpoint [the shipped default model]")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--frames", type=int, default=8, help="20 MP frames per run")
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch

    from sspnet_cli.inference.engine import Detector

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this benchmark needs a GPU (--device cuda)")
    tmp = Path(tempfile.mkdtemp(prefix="sspnet-gpu-"))
    frame = make_20mp(sorted((REPO / "samples").glob("*.jpg")), tmp / "frame.jpg")
    paths = [frame] * args.frames
    mp = megapixels(paths)
    report: dict = {"benchmark": "detect throughput on a GPU (one process)", "machine": machine(), "device": args.device,
                    "frames": args.frames, "megapixels": round(mp, 2), "repeats": args.repeats, "runs": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for half in (False, True):
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            detector = Detector(args.weights, device=args.device, batch_size=batch, half=half)
            sum(len(r.detections) for r in detector.run(paths[:1]))  # warm-up
            torch.cuda.reset_peak_memory_stats()
            seconds, found = [], 0
            for _ in range(args.repeats):
                torch.cuda.synchronize()
                t = time.perf_counter()
                found = sum(len(r.detections) for r in detector.run(paths))
                torch.cuda.synchronize()
                seconds.append(time.perf_counter() - t)
            key = f"{'fp16' if half else 'fp32'} batch {batch}"
            report["runs"][key] = {
                "seconds": [round(s, 3) for s in seconds], "megapixels_per_s": round(mp / min(seconds), 2),
                "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1), "detections": found,
            }
            print(key, json.dumps(report["runs"][key]), flush=True)
            out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
