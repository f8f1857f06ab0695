"""Tiles on a 2-core CPU: one model with 2 threads, tile after tile (what detect does), against two
models with one thread each, working on two tiles at once (one per core).

    python benchmarks/bench_tile_workers.py --rounds 5 --out benchmarks/results/tile_workers_cpu.json

The shipped model's onnxruntime export, the 18 tiles of the three samples at one scale without the
mirrored test, inference only (no decode or merge); the two ways interleaved round by round, and
checked to give the same detections first.
"""
import argparse, json, sys, time, statistics, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import cv2, numpy as np, torch
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO)); sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine  # noqa: E402
from sspnet_cli.inference.engine import _onnx_model, onnx_cache_dir
from sspnet_cli.inference.onnx import OnnxSSPNet
from sspnet_cli.model.backbones import sha256_of

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--out", type=Path)
args = ap.parse_args()
w = REPO / "weights/sspnet_default.pt"
_onnx_model(w, 1)  # makes sure the export is cached
path = onnx_cache_dir() / sha256_of(w)[:32] / "model.onnx"
tiles = []
for p in sorted((REPO / "samples").glob("*.jpg")):
    img = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    for y in (0, 478):
        for x in (0, 560, 1120):
            tiles.append(torch.from_numpy(np.ascontiguousarray(img[y:y+512, x:x+640])).permute(2, 0, 1).contiguous()[None])
rounds = args.rounds
torch.set_num_threads(2)
seq = OnnxSSPNet(path, 2)
par = [OnnxSSPNet(path, 1) for _ in range(2)]

def run_seq():
    torch.set_num_threads(2)
    with torch.inference_mode():
        return [seq.predict(t)[0][0] for t in tiles]

def run_par(torch_threads=1):
    torch.set_num_threads(torch_threads)
    local = threading.local()
    ids = iter(range(2)); lock = threading.Lock()
    def work(t):
        if not hasattr(local, "m"):
            with lock: local.m = par[next(ids)]
        with torch.inference_mode():
            return local.m.predict(t)[0][0]
    with ThreadPoolExecutor(2) as ex:
        return list(ex.map(work, tiles))

a, b = run_seq(), run_par()
worst_box, worst_score = 0.0, 0.0
for x, y in zip(a, b):
    assert len(x["boxes"]) == len(y["boxes"]), (len(x["boxes"]), len(y["boxes"]))
    if len(x["boxes"]):
        worst_box = max(worst_box, (x["boxes"] - y["boxes"]).abs().max().item()); worst_score = max(worst_score, (x["scores"] - y["scores"]).abs().max().item())
print(f"{len(tiles)} tiles, same counts; max box diff {worst_box:.2e} px, score diff {worst_score:.2e}")
run_par_t2 = lambda: run_par(2)  # noqa: E731  torch's own ops left at 2 threads (the process setting)
t = {"seq": [], "par": [], "par_torch2": []}
ways = [("seq", run_seq), ("par", run_par), ("par_torch2", run_par_t2)]
for r in range(rounds):
    for name, fn in (ways if r % 2 == 0 else ways[::-1]):
        t0 = time.perf_counter(); fn(); t[name].append((time.perf_counter() - t0) / len(tiles))
for k, v in t.items(): print(k, "s/tile median %.3f min %.3f" % (statistics.median(v), min(v)))
if args.out:
    args.out.write_text(json.dumps({
        "benchmark": "seconds a tile: one 2-thread model tile after tile (seq) vs two 1-thread onnxruntime models on two tiles at once, torch at 1 thread (par) or 2 (par_torch2)",
        "machine": machine(), "tiles": len(tiles), "rounds": rounds, "max_box_diff_px": worst_box, "max_score_diff": worst_score,
        "seconds_per_tile": {k: {"median": round(statistics.median(v), 3), "min": round(min(v), 3), "all": [round(x, 3) for x in v]} for k, v in t.items()},
    }, indent=2) + "\n")
