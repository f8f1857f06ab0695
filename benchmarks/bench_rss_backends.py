"""Peak resident memory of `sspnet detect` on a large GeoTIFF, per inference backend.

    python benchmarks/bench_rss_backends.py --side 20000 --out benchmarks/results/rss_backends_cpu.json \
        [--weights CKPT] [--backends torch,onnxruntime-cold,onnxruntime]

Each run is ``/usr/bin/time -v python -m sspnet_cli detect big.tif --weights W --device cpu
--backend B --out out.geojson`` in a fresh process (its "Maximum resident set size"), beside the
import floor: ``python -c 'import torch, torchvision, rasterio, cv2, onnxruntime, onnx,
sspnet_cli.api'``. ``onnxruntime-cold`` starts with an empty export cache ($SSPNET_CACHE), so the
ONNX export of the checkpoint happens inside the measured run, as on a user's first detect;
``onnxruntime`` then reuses that export (``--precision``: fp32, int8 or auto, detect's default). Without --weights an untrained SSPNet-Lite checkpoint is
used (memory does not depend on training; its scores stay below the output threshold, so the
output is small, as for a trained model over terrain without people).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_detect import make_big_geotiff  # noqa: E402
from machine import machine  # noqa: E402
from sspnet_cli.config import preset_config  # noqa: E402
from sspnet_cli.imagery.tiling import window_grid  # noqa: E402
from sspnet_cli.model.build import build_from_config  # noqa: E402
from sspnet_cli.model.checkpoint import save_checkpoint  # noqa: E402

FLOOR = "import torch, torchvision, rasterio, cv2, onnxruntime, onnx, sspnet_cli.api"


def timed(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; its peak RSS (MB) and wall time."""
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr).group(1)
    runtime = re.search(r"Summary \(([^)]*)\)", done.stderr)  # detect's summary: backend, precision, lanes
    return {"peak_rss_mb": round(peak / 1024.0, 1), "wall": wall, **({"runtime": runtime.group(1)} if runtime else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=20_000, help="raster width and height in pixels")
    ap.add_argument("--weights", default=None, help="checkpoint [default: an untrained SSPNet-Lite]")
    ap.add_argument("--backends", default="torch,onnxruntime-cold,onnxruntime")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lanes", default="auto", help="detect's --lanes for the onnxruntime runs")
    ap.add_argument("--precision", default="auto", help="detect's --precision for the onnxruntime runs")
    ap.add_argument("--note", default="", help="what else the machine was doing (wall times depend on it; peaks do not)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sspnet-rss-"))
    big = tmp / f"big_{args.side}.tif"
    make_big_geotiff(big, side=args.side)
    if args.weights:
        weights, model_note = Path(args.weights), f"checkpoint {Path(args.weights).name}"
    else:
        torch.manual_seed(0)
        model = build_from_config(preset_config("lite"))
        with torch.no_grad():
            model.roi_heads.cls_score.bias.copy_(torch.tensor([0.0, -2.2]))
        weights, model_note = tmp / "lite_untrained.pt", "untrained SSPNet-Lite (scores below the output threshold)"
        save_checkpoint(weights, model)
    env = dict(os.environ, SSPNET_CACHE=str(tmp / "cache"))
    report = {
        "benchmark": f"peak resident memory of `sspnet detect` on a {args.side:,} x {args.side:,} GeoTIFF, by backend",
        "how": __doc__.strip().split("\n\n")[2].replace("\n", " "),
        "machine": machine(),
        "note": args.note,
        "lanes": args.lanes,
        "precision": args.precision,
        "model": model_note,
        "tiles": len(window_grid(args.side, args.side)),
        "import_floor": timed([sys.executable, "-c", FLOOR], env),
        "runs": {},
    }
    floor = report["import_floor"]["peak_rss_mb"]
    backends = args.backends.split(",")
    if backends[0] == "onnxruntime":  # a warm run first: the export made beforehand, as on a second detect
        sample = sorted((REPO / "samples").glob("*.jpg"))[0]
        subprocess.run([sys.executable, "-m", "sspnet_cli", "detect", str(sample), "--weights", str(weights), "--device", "cpu",
                        "--backend", "onnxruntime", "--precision", args.precision, "--out", str(tmp / "prime.geojson")], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for backend in backends:
        flag = backend.replace("-cold", "")
        if backend.endswith("-cold"):
            shutil.rmtree(tmp / "cache", ignore_errors=True)
        run = timed([sys.executable, "-m", "sspnet_cli", "detect", str(big), "--weights", str(weights), "--device", "cpu",
                     "--backend", flag, "--out", str(tmp / f"{backend}.geojson"),
                     *(["--lanes", args.lanes, "--precision", args.precision] if flag == "onnxruntime" else [])], env)
        run["above_floor_mb"] = round(run["peak_rss_mb"] - floor, 1)
        report["runs"][backend] = run
        print(backend, run, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    part.write_text(json.dumps(report, indent=2) + "\n")
    part.replace(out)


if __name__ == "__main__":
    main()
