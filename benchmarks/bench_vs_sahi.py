"""`sspnet detect` against SAHI's sliced prediction with the same model, on the same frames.

    python -m venv --system-site-packages /tmp/sahienv && /tmp/sahienv/bin/pip install sahi==0.12.8
    /tmp/sahienv/bin/python benchmarks/bench_vs_sahi.py --out benchmarks/results/vs_sahi_cpu.json

SAHI is installed in the bench environment only (it is not a dependency of sspnet). Both sides
use the shipped default model (or ``--weights``), 640x512 slices with 30 px overlap, NMS at IoU
0.5 and score 0.3, at one scale without the mirrored test, so that both run the same tiles
(what ``detect`` runs by default, the test scales and mirrored test the checkpoint records, is
timed as well on the samples):

- SAHI: the model wrapped in ``sahi.models.torchvision.TorchVisionDetectionModel`` (it takes
  torchvision's call convention: a list of float RGB tensors in [0, 1], dicts of boxes, labels
  and scores back, which the sspnet model speaks), ``get_sliced_prediction`` with
  ``perform_standard_pred=False`` (sspnet runs no whole-frame pass either), ``postprocess_type
  ="NMS"``, ``postprocess_match_metric="IOU"``, then the COCO predictions written to JSON.
- sspnet: ``sspnet_cli.api.detect`` end to end (decode, tile, model, merge, write a GeoJSON),
  in the same process, loading its model inside the timing (SAHI's is loaded once, outside), at
  detect's defaults (``--backend auto --precision auto``: onnxruntime where installed, the dense
  graph in int8 on a CPU with VNNI/AMX; the export is cached, made once before the timing as
  detect's first run makes it); and the same at ``--precision fp32`` (the checkpoint's own
  arithmetic: the same detections as SAHI's torch model, to float precision).

Frames: the three samples (1760x990), a 20-megapixel frame (5472x3648, the samples tiled and
mirrored) and the large PNG of ``../shared/data/geo`` (skipped without it). Each side runs each
set ``--repeats`` times, after one warm-up frame each; the minimum counts. Also measured: the
time from ``api.detect``'s call to its first finished tile, and the cold start of the CLI (``sspnet detect``
on one sample in a fresh process, and ``sspnet --help``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402

GEO_PNG = "2019_YELL_2_528000_4978000_image_crop2.png"


def shared_dir() -> Path:
    return Path(os.environ.get("SSPNET_SHARED_DIR", REPO.parent / "shared"))


def make_20mp(samples: list[Path], path: Path, size: tuple[int, int] = (5472, 3648)) -> Path:
    """A 5472x3648 frame: the samples side by side, alternately mirrored so no seam repeats."""
    w, h = size
    frames = [cv2.imread(str(p)) for p in samples]
    canvas = np.zeros((h, w, 3), np.uint8)
    k = 0
    for y in range(0, h, 640):
        for x in range(0, w, 640):
            tile = frames[k % len(frames)]
            if k % 2:
                tile = tile[:, ::-1]
            k += 1
            canvas[y : y + 640, x : x + 640] = tile[: min(640, h - y), : min(640, w - x)]
    cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def megapixels(paths: list[Path]) -> float:
    total = 0.0
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        total += img.shape[0] * img.shape[1] / 1e6
    return total


def timed(fn, repeats: int) -> tuple[dict, object]:
    seconds, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        seconds.append(time.perf_counter() - t)
    return {"min": round(min(seconds), 3), "all": [round(s, 3) for s in seconds]}, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="checkpoint [the shipped default model]")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--sets", default="samples,20mp,geo_png", help="which frame sets to run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch
    from sahi import __version__ as sahi_version
    from sahi.models.torchvision import TorchVisionDetectionModel
    from sahi.predict import get_sliced_prediction

    from sspnet_cli import api
    from sspnet_cli.api.detect import DetectProgress
    from sspnet_cli.config import model_test_flip, model_test_scales
    from sspnet_cli.inference.weights import resolve_weights
    from sspnet_cli.model.checkpoint import load_model

    weights = resolve_weights(args.weights)
    tmp = Path(tempfile.mkdtemp(prefix="sspnet-vs-sahi-"))
    samples = sorted((REPO / "samples").glob("*.jpg"))
    sets: dict[str, list[Path]] = {}
    wanted = args.sets.split(",")
    if "samples" in wanted:
        h, w = cv2.imread(str(samples[0])).shape[:2]
        sets[f"samples ({len(samples)} x {w}x{h})"] = samples
    if "20mp" in wanted:
        sets["20 MP frame (5472x3648)"] = [make_20mp(samples, tmp / "frame_20mp.jpg")]
    png = shared_dir() / "data" / "geo" / GEO_PNG
    if "geo_png" in wanted and png.is_file():
        sets[f"large PNG ({GEO_PNG})"] = [png]

    model, meta = load_model(weights, "cpu")
    sahi_model = TorchVisionDetectionModel(model=model, confidence_threshold=0.3, category_mapping={"1": "person"},
                                           device="cpu", load_at_init=True)

    def run_sahi(paths: list[Path]) -> int:
        found = []
        for p in paths:
            result = get_sliced_prediction(
                str(p), sahi_model, slice_height=512, slice_width=640,
                overlap_height_ratio=30 / 512, overlap_width_ratio=30 / 640, perform_standard_pred=False,
                postprocess_type="NMS", postprocess_match_metric="IOU", postprocess_match_threshold=0.5, verbose=0,
            )
            found.extend(result.to_coco_predictions(image_id=len(found)))
        (tmp / "sahi.json").write_text(json.dumps(found, default=float))
        return len(found)

    first_tile: list[float] = []

    def run_sspnet(paths: list[Path], precision: str = "auto", own_views: bool = False) -> int:
        start = time.perf_counter()
        first_tile.clear()
        progress = DetectProgress(on_tiles=lambda n: first_tile.append(time.perf_counter() - start) if not first_tile else None)
        # the same work as SAHI's side (one scale, no mirrored test) unless own_views: the test
        # scales and mirrored test the checkpoint records, what `sspnet detect` runs by default
        views = {} if own_views else {"scales": (1.0,), "flip": False}
        summary = api.detect(paths, tmp / "sspnet.geojson", weights=weights, device="cpu", precision=precision, progress=progress, **views)
        runtime.append(summary.runtime)
        return sum(len(r.detections) for r in summary.results)

    runtime: list[str] = []
    os.environ.setdefault("SSPNET_CACHE", str(tmp / "cache"))  # exports made here, once, before the timings

    report: dict = {
        "benchmark": "sspnet detect (API, end to end) vs SAHI get_sliced_prediction, same model, 640x512 slices, 30 px overlap, NMS 0.5, score 0.3, one scale, no mirrored test",
        "machine": machine(),
        "sahi": sahi_version,
        "weights": str(weights.relative_to(REPO) if weights.is_relative_to(REPO) else weights),
        "repeats": args.repeats,
        "sets": {},
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # SAHI's timings first: the first detector sspnet makes sets glibc's malloc options for the
    # whole process (sspnet_cli/inference/heap.py), which SAHI's own process would not have
    run_sahi(samples[:1])  # warm-up of every side (allocator, oneDNN kernels, first import)
    sahi_runs = {name: timed(lambda: run_sahi(paths), args.repeats) for name, paths in sets.items()}
    report["order"] = "SAHI timed on every set first, then sspnet (whose malloc settings are process-wide)"
    run_sspnet(samples[:1])  # warm-up, and the cached export of detect's first run
    report["sspnet_runtime"] = runtime[-1]  # backend, precision, lanes at detect's defaults
    run_sspnet(samples[:1], "fp32")
    report["sspnet_fp32_runtime"] = runtime[-1]
    for name, paths in sets.items():
        mp = megapixels(paths)
        sahi_t, sahi_n = sahi_runs[name]
        ours_t, ours_n = timed(lambda: run_sspnet(paths), args.repeats)
        report["sets"][name] = {
            "megapixels": round(mp, 3),
            "sahi": {"seconds": sahi_t, "megapixels_per_s": round(mp / sahi_t["min"], 4), "frames_per_s": round(len(paths) / sahi_t["min"], 4), "detections": sahi_n},
            "sspnet": {"seconds": ours_t, "megapixels_per_s": round(mp / ours_t["min"], 4), "frames_per_s": round(len(paths) / ours_t["min"], 4),
                       "detections": ours_n, "first_tile_s": round(first_tile[0], 3) if first_tile else None},
            "speedup": round(sahi_t["min"] / ours_t["min"], 3),
        }
        f_t, f_n = timed(lambda: run_sspnet(paths, "fp32"), args.repeats)
        report["sets"][name]["sspnet_fp32"] = {
            "seconds": f_t, "megapixels_per_s": round(mp / f_t["min"], 4), "frames_per_s": round(len(paths) / f_t["min"], 4),
            "detections": f_n, "first_tile_s": round(first_tile[0], 3) if first_tile else None,
        }
        report["sets"][name]["speedup_fp32"] = round(sahi_t["min"] / f_t["min"], 3)
        if name.startswith("samples"):
            own_t, own_n = timed(lambda: run_sspnet(paths, own_views=True), args.repeats)
            report["sets"][name]["sspnet_model_views"] = {
                "what": "the checkpoint's own test scales and mirrored test (detect's defaults), " + report["sspnet_runtime"],
                "test_scales": list(model_test_scales(meta)), "test_flip": model_test_flip(meta),
                "seconds": own_t, "megapixels_per_s": round(mp / own_t["min"], 4), "frames_per_s": round(len(paths) / own_t["min"], 4),
                "detections": own_n,
            }
        print(name, json.dumps(report["sets"][name]), flush=True)
        out_path.write_text(json.dumps(report, indent=2) + "\n")

    cli = [sys.executable, "-m", "sspnet_cli"]
    cold = {}
    for label, cmd in (("sspnet --help", cli + ["--help"]),
                       ("sspnet detect (one sample, fresh process)", cli + ["detect", str(samples[0]), "--out", str(tmp / "cold.geojson"), "--device", "cpu"] + (["--weights", str(weights)] if args.weights else []))):
        seconds = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds.append(time.perf_counter() - t)
        cold[label] = {"min_s": round(min(seconds), 3), "all": [round(s, 3) for s in seconds]}
    report["cold_start"] = cold
    report["torch_threads"] = torch.get_num_threads()
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(cold, indent=2))


if __name__ == "__main__":
    main()
