"""Time the TinyPerson evaluation on 1,000 images x 1,000 detections (synthetic, seeded), on CPU.

    python benchmarks/bench_eval.py [--images 1000] [--dets 1000] [--repeat 3] [--out PATH]

Writes the timings and a description of the machine to benchmarks/results/eval_cpu.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine  # noqa: E402
from sspnet_cli.evaluation import evaluate_tinyperson  # noqa: E402
from sspnet_cli.evaluation.inputs import pack_detections, pack_ground_truth  # noqa: E402


def synthetic_case(n_images: int, dets_per_image: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """TinyPerson-like frames: ~30 people of 2-40 px and a few ignore regions per 1920x1080
    frame; detections are 3 jittered copies of each person plus random boxes, all scored."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(n_images):
        images.append({"id": i + 1, "file_name": f"frame_{i:05d}.jpg", "width": 1920, "height": 1080})
        n_gt = int(rng.integers(10, 50))
        size = np.exp(rng.uniform(np.log(2), np.log(40), n_gt))
        aspect = rng.uniform(0.4, 1.0, n_gt)
        w, h = size * np.sqrt(aspect), size / np.sqrt(aspect)
        x, y = rng.uniform(0, 1900, n_gt), rng.uniform(0, 1060, n_gt)
        n_ign = int(rng.integers(0, 4))
        for j in range(n_gt + n_ign):
            if j < n_gt:
                box, ignore = [x[j], y[j], w[j], h[j]], False
            else:
                box, ignore = [*rng.uniform(0, 1700, 2), *rng.uniform(30, 200, 2)], True
            box = [round(float(v), 2) for v in box]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0, "ignore": ignore, "uncertain": False})
        n_near = min(3 * n_gt, dets_per_image)
        src = rng.integers(0, n_gt, n_near)
        jitter = rng.normal(0, 0.15, (n_near, 4)) * size[src, None]
        near = np.stack([x[src], y[src], w[src], h[src]], 1) + jitter
        near[:, 2:] = np.maximum(near[:, 2:], 1.0)
        n_far = dets_per_image - n_near
        s = np.exp(rng.uniform(np.log(2), np.log(50), n_far))
        far = np.stack([rng.uniform(0, 1900, n_far), rng.uniform(0, 1060, n_far), s, s * rng.uniform(1, 2.5, n_far)], 1)
        boxes = np.concatenate([near, far])
        scores = np.concatenate([rng.uniform(0.3, 1.0, n_near), rng.uniform(0.0, 0.7, n_far)])
        for b, sc in zip(boxes.round(2).tolist(), scores.round(4).tolist()):
            dets.append({"image_id": i + 1, "category_id": 1, "bbox": b, "score": sc})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}, dets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--dets", type=int, default=1000, help="detections per image")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_cpu.json")
    args = ap.parse_args()

    t0 = time.perf_counter()
    gt, dets = synthetic_case(args.images, args.dets, args.seed)
    gen_s = time.perf_counter() - t0
    times, result = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = evaluate_tinyperson(gt, dets)
        times.append(time.perf_counter() - t0)
    assert result is not None
    t0 = time.perf_counter()
    pack_detections(dets, pack_ground_truth(gt)[0])
    convert_s = time.perf_counter() - t0
    report = {
        "benchmark": "evaluate_tinyperson (all 39 AP/MR metrics and curves) on synthetic TinyPerson-like data",
        "note": "seconds: the whole call, from the list of dicts to the result; "
                "of_which_input_conversion_seconds: validating and converting the dicts to arrays",
        "images": args.images,
        "detections_per_image": args.dets,
        "detections": len(dets),
        "ground_truth": len(gt["annotations"]),
        "seed": args.seed,
        "seconds": {"min": round(min(times), 3), "median": round(statistics.median(times), 3),
                    "runs": [round(t, 3) for t in times]},
        "of_which_input_conversion_seconds": round(convert_s, 3),
        "data_generation_seconds": round(gen_s, 3),
        "sample_metrics": {k: None if result.metrics[k] is None else round(result.metrics[k], 4)
                           for k in ("AP50_tiny", "AP25_tiny", "AP75_tiny", "MR50_tiny", "AP50_all", "MR50_all")},
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
