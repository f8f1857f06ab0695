"""Throughput of `sspnet detect` against a sequential per-tile loop, and peak memory on a huge raster.

    python benchmarks/bench_detect.py --images samples/ ../shared/data/geo/2019_YELL_2_528000_4978000_image_crop2.png \
        --out benchmarks/results/detect_cpu.json [--weights CKPT] [--device cpu] [--batch-sizes 1,2,4]

Both sides use the same model, the same window grid and the same merge (merge_frame), so the
difference is the pipeline: ours reads frames/bands in a background thread, uploads each band
once and cuts tiles as views, batches tiles, and post-processes a batch at once. The baseline
does what SAHI's sliced prediction did for years: read the whole image, then for every window
crop a copy, pad it, run the model on that one tile, shift its boxes; merge at the end.
Megapixels per second count the frame pixels (read + tile + infer + merge + write).

Without --weights both sides use an untrained model of the default architecture (speed does
not depend on training, except through how many boxes reach soft-NMS; the untrained head is
biased to report boxes so post-processing is not skipped).

``--rss`` additionally writes a synthetic 20,000 x 20,000 GeoTIFF and runs the CLI on it in a
child process, reporting its peak resident memory (the small test model is used there: 1,600
tiles of the full model would take hours on a CPU, and the point is that memory grows with the
raster's width, not its area).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine  # noqa: E402
from sspnet_cli.config import ModelConfig, RoIConfig  # noqa: E402
from sspnet_cli.inference.engine import Detector  # noqa: E402
from sspnet_cli.imagery.inputs import expand_inputs  # noqa: E402
from sspnet_cli.inference.merge import merge_frame, tile_to_frame  # noqa: E402
from sspnet_cli.imagery.tiling import window_grid  # noqa: E402
from sspnet_cli.model.build import build_from_config  # noqa: E402
from sspnet_cli.model.checkpoint import load_model, save_checkpoint  # noqa: E402
from sspnet_cli.outputs import write_results  # noqa: E402
from sspnet_cli.types import ImageResult  # noqa: E402


def sequential_per_tile(model, paths, device, tile=(640, 512), overlap=30, nms_iou=0.5, score_thr=0.3):
    """The baseline: whole-image read, then one tile at a time."""
    results = []
    tw, th = tile
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        parts = []
        windows = window_grid(w, h, tile, overlap)
        for i, win in enumerate(windows):
            crop = np.zeros((th, tw, 3), np.uint8)
            piece = rgb[win.y : win.y + th, win.x : win.x + tw]
            crop[: piece.shape[0], : piece.shape[1]] = piece
            tensor = torch.from_numpy(crop).permute(2, 0, 1).float().div(255).to(device)
            with torch.no_grad():
                det = model([tensor])[0]
            framed, cut = tile_to_frame(det, win, (w, h))
            parts.append((framed, cut, i))
        merged = merge_frame(parts, windows, nms_iou, score_thr)
        results.append(ImageResult(str(path), w, h, merged.to("cpu")))
    return results


def time_it(fn, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"min": round(min(runs), 3), "median": round(sorted(runs)[len(runs) // 2], 3), "runs": [round(r, 3) for r in runs]}


def make_big_geotiff(path: Path, side: int = 20_000) -> None:
    """A deflate-compressed, internally tiled RGB GeoTIFF with a cheap pattern (small on disk)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=from_origin(500_000, 5_000_000, 0.05, 0.05), tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate")
    with rasterio.open(path, "w", **profile) as ds:
        rows = 512
        x = np.arange(side, dtype=np.uint16)
        for y0 in range(0, side, rows):
            h = min(rows, side - y0)
            band = ((x[None, :] // 7 + np.arange(y0, y0 + h, dtype=np.uint16)[:, None] // 5) % 64 + 90).astype(np.uint8)
            ds.write(np.stack([band, band, band]), window=Window(0, y0, side, h))


def small_model_checkpoint(folder: Path) -> Path:
    """A small untrained model whose scores (about 0.1) pass the model's 0.05 floor but not the
    output threshold: every tile's boxes are kept until its frame is merged, the output stays
    small, as for a trained model over an orthomosaic without people."""
    cfg = ModelConfig(backbone="resnet18", backbone_norm="bn", frozen_stages=0, neck_channels=32, roi=RoIConfig(fc_dim=128))
    model = build_from_config(cfg)
    with torch.no_grad():
        model.roi_heads.cls_score.bias.copy_(torch.tensor([0.0, -2.2]))
    path = folder / "small.pt"
    save_checkpoint(path, model)
    return path


def peak_rss_of_cli(args: list[str]) -> tuple[float, float]:
    """Run the CLI in a child process; (peak RSS in MB, seconds)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sspnet_cli", *args], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=[str(REPO / "samples")])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-sizes", default="1")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--half", action="store_true")
    ap.add_argument("--rss", action="store_true", help="also measure peak RSS on a 20,000 x 20,000 GeoTIFF")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="sspnet-bench-"))
    if args.weights:
        weights = Path(args.weights)
        model_note = f"checkpoint {weights.name}"
    else:
        torch.manual_seed(0)
        model = build_from_config(ModelConfig())
        with torch.no_grad():
            model.roi_heads.cls_score.bias.copy_(torch.tensor([-1.0, 1.0]))
        weights = tmp / "untrained-default.pt"
        save_checkpoint(weights, model)
        model_note = "untrained SSPNet-R50 Faster R-CNN (default architecture)"
    model, _ = load_model(weights, device)
    paths = expand_inputs(args.images).paths
    megapixels = 0.0
    tiles = 0
    for p in paths:
        img = cv2.imread(str(p))
        megapixels += img.shape[0] * img.shape[1] / 1e6
        tiles += len(window_grid(img.shape[1], img.shape[0]))

    report = {
        "benchmark": "sspnet detect pipeline vs sequential per-tile loop (same model, grid and merge)",
        "machine": machine(),
        "device": str(device),
        "model": model_note,
        "images": [str(p) for p in paths],
        "megapixels": round(megapixels, 3),
        "tiles": tiles,
        "repeats": args.repeats,
        "results": {},
    }
    out_file = tmp / "bench.geojson"

    def run_pipeline(batch: int) -> None:
        det = Detector.from_model(model, device=str(device), batch_size=batch, half=args.half)
        results = [r for r in det.run(paths)]
        write_results(out_file, results, {})

    def run_sequential() -> None:
        write_results(out_file, sequential_per_tile(model, paths, device), {})

    run_sequential()  # warm-up (allocator, kernels)
    seq = time_it(run_sequential, args.repeats)
    report["results"]["sequential_per_tile"] = {"seconds": seq, "megapixels_per_s": round(megapixels / seq["min"], 4)}
    for b in [int(v) for v in args.batch_sizes.split(",")]:
        t = time_it(lambda: run_pipeline(b), args.repeats)
        report["results"][f"pipeline_batch_{b}"] = {"seconds": t, "megapixels_per_s": round(megapixels / t["min"], 4)}
    best = max(v["megapixels_per_s"] for k, v in report["results"].items() if k.startswith("pipeline"))
    report["speedup_best_pipeline_vs_sequential"] = round(best / report["results"]["sequential_per_tile"]["megapixels_per_s"], 3)

    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2) + "\n")  # the timings, before the long RSS run
    print(json.dumps(report["results"], indent=2), flush=True)
    if args.rss:
        big = tmp / "big_20000.tif"
        t = time.perf_counter()
        make_big_geotiff(big)
        small = small_model_checkpoint(tmp)
        rss, seconds = peak_rss_of_cli(["detect", str(big), "--weights", str(small), "--device", args.device,
                                         "--out", str(tmp / "big.geojson")])
        report["rss_20000x20000_geotiff"] = {
            "peak_rss_mb": round(rss, 1),
            "seconds": round(seconds, 1),
            "model": "untrained ResNet-18 SSPNet, 32-channel neck (see the docstring)",
            "raster": "20,000 x 20,000 x 3 uint8, deflate, 512 px internal tiles, EPSG:32633",
            "file_mb": round(big.stat().st_size / 1e6, 1),
            "write_seconds": round(time.perf_counter() - t - seconds, 1),
        }
        out_path.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["rss_20000x20000_geotiff"], indent=2))


if __name__ == "__main__":
    main()
