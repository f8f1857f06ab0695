"""`detect`'s CPU backends end to end on the sample frames: seconds per 640x512 tile.

    python benchmarks/bench_backend_e2e.py --weights runs/x/best.pt --out benchmarks/results/backend_e2e_cpu.json

Each backend's ``Detector`` (what ``sspnet detect --backend torch|onnxruntime`` builds: BatchNorm
folded, channels-last, inference mode; onnxruntime for the dense part and the R-CNN head, with
one lane or two: two tiles at once, one thread each) at one scale without the mirrored test runs the
sample frames once to warm up, then ``--rounds`` times, the backends interleaved; decode, tiling,
model and merge are all inside the time. The detection counts per frame must be equal.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402
from sspnet_cli.inference.engine import Detector  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    samples = sorted((REPO / "samples").glob("*.jpg"))
    one_view = dict(scales=(1.0,), flip=False)  # the speed setting, the tiles SAHI runs
    detectors = {
        "torch": Detector(args.weights, device="cpu", backend="torch", **one_view),
        "onnxruntime, 1 lane": Detector(args.weights, device="cpu", backend="onnxruntime", lanes=1, **one_view),
        "onnxruntime, 2 lanes": Detector(args.weights, device="cpu", backend="onnxruntime", lanes=2, **one_view),
    }
    for d in detectors.values():
        list(d.run(samples[:1]))
    per_tile: dict[str, list[float]] = {b: [] for b in detectors}
    counts: dict[str, list[int]] = {}
    tiles = 0
    for _ in range(args.rounds):
        for name, d in detectors.items():
            n = [0]
            t = time.perf_counter()
            results = list(d.run(samples, on_tiles=lambda k: n.__setitem__(0, n[0] + k)))
            per_tile[name].append((time.perf_counter() - t) / n[0])
            counts[name] = [len(r.detections) for r in results]
            tiles = n[0]
    report = {
        "benchmark": "detect's torch and onnxruntime backends (one and two lanes) end to end on samples/ at one scale without the mirrored test, seconds per 640x512 tile",
        "machine": machine(),
        "weights": args.weights,
        "frames": len(samples),
        "tiles_per_round": tiles,
        "rounds": args.rounds,
        "results": {b: {"s_per_tile_median": round(statistics.median(v), 3), "s_per_tile_min": round(min(v), 3),
                        "detections_per_frame": counts[b]} for b, v in per_tile.items()},
        "same_detection_counts": len({tuple(c) for c in counts.values()}) == 1,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["results"], indent=2))


if __name__ == "__main__":
    main()
