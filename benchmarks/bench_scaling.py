"""Scale-out of `sspnet detect`: one process against `torchrun --nproc-per-node N` on the same job.

    python benchmarks/bench_scaling.py --out benchmarks/results/scaling_cpu.json [--procs 2] [--frames 24]

The job is ``--frames`` copies of the sample frames plus one tall raster that is split into bands
(so both kinds of work unit are in it), run with the small untrained test-size model (what is
measured is the job machinery: planning, balancing, part files, gather). Each run is a fresh
child process, so start-up (importing torch, loading the model, initialising gloo) is counted.

Runs compared, each timed ``--repeats`` times:

* ``1 process``: plain ``python -m sspnet_cli detect`` (torch's default intra-op threads);
* ``1 process, 1 thread``: the same with ``OMP_NUM_THREADS=1``;
* ``N processes``: ``torchrun --nproc-per-node N`` (torchrun gives each process one thread).

Efficiency is ``t(1 process, 1 thread) / (N * t(N processes))``: how much of N times one
process's throughput the job reached. The outputs are compared too: one process with one thread
against N processes (the same arithmetic per tile: same boxes in the same order, scores within
1e-4); row counts are given for all three.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
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

from bench_detect import small_model_checkpoint  # noqa: E402
from machine import machine  # noqa: E402


def make_job(folder: Path, frames: int) -> list[Path]:
    samples = sorted((REPO / "samples").glob("*.jpg"))
    paths = []
    for k in range(frames):
        src = samples[k % len(samples)]
        dst = folder / f"frame_{k:03d}.jpg"
        shutil.copyfile(src, dst)
        paths.append(dst)
    tall = np.concatenate([cv2.imread(str(s)) for s in samples] * 3, axis=0)  # 640 x 5760: 12 tile rows
    cv2.imwrite(str(folder / "tall.png"), tall)
    paths.append(folder / "tall.png")
    return paths


def run(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def rows_of(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def same_output(a: Path, b: Path, tol: float = 1e-4) -> bool:
    ra, rb = rows_of(a), rows_of(b)
    if len(ra) != len(rb):
        return False
    for x, y in zip(ra, rb):
        if x[0] != y[0] or any(abs(float(p) - float(q)) > tol for p, q in zip(x[1:6], y[1:6])):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sspnet-scaling-"))
    try:
        weights = small_model_checkpoint(work)
        images = make_job(work, args.frames)
        megapixels = sum(cv2.imread(str(p)).shape[0] * cv2.imread(str(p)).shape[1] for p in images) / 1e6
        common = ["detect", *map(str, images), "--weights", str(weights), "--device", "cpu", "--score-thr", "0.1"]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        one_thread = dict(env, OMP_NUM_THREADS="1")
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.procs}", "-m", "sspnet_cli"]
        plans = {
            "1 process": ([sys.executable, "-m", "sspnet_cli", *common, "--out", str(work / "one.csv")], env),
            "1 process, 1 thread": ([sys.executable, "-m", "sspnet_cli", *common, "--out", str(work / "one_t1.csv")], one_thread),
            f"{args.procs} processes": ([*torchrun, *common, "--out", str(work / "many.csv")], env),
        }
        timings: dict[str, dict] = {}
        for name, (cmd, e) in plans.items():
            runs = [round(run(cmd, e), 2) for _ in range(args.repeats)]
            timings[name] = {"seconds_min": min(runs), "runs": runs, "megapixels_per_second": round(megapixels / min(runs), 3)}
        t1 = timings["1 process, 1 thread"]["seconds_min"]
        tn = timings[f"{args.procs} processes"]["seconds_min"]
        result = {
            "benchmark": "detect scale-out with torchrun (CPU, gloo)",
            "machine": machine(),
            "job": {"images": len(images), "megapixels": round(megapixels, 2), "tall_raster": "640 x 5760 (split into bands)",
                    "model": "untrained ResNet-18 test-size model (neck 32 channels)"},
            "timings": timings,
            "speedup_vs_1_process_1_thread": round(t1 / tn, 3),
            "efficiency": round(t1 / (args.procs * tn), 3),
            # the same arithmetic (one thread per process) must give the same output; with two
            # threads the sums are ordered differently, and boxes whose score lies within float
            # noise of a threshold may come and go
            "outputs_equal_1_thread_vs_n_processes": same_output(work / "one_t1.csv", work / "many.csv"),
            "rows": {"1 process": len(rows_of(work / "one.csv")), "1 process, 1 thread": len(rows_of(work / "one_t1.csv")),
                     f"{args.procs} processes": len(rows_of(work / "many.csv"))},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
