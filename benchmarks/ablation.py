"""The paper's ablation (SSPNet neck vs FPN, WNS, the attention loss) at the lite recipe's budget.

    nice python benchmarks/ablation.py --data ../shared/data/tinyperson-rf --runs runs/ablation \
        --arms sspnet,fpn,no_wns --existing sspnet=runs/lite10 --out benchmarks/results/ablation_cpu.json

(``--existing sspnet=runs/lite10``: the shipped default's own run is the SSPNet arm.)

Each arm is one ``sspnet train`` of the same recipe, seed and patches (only the arm's option
differs), run one after another in the background; an arm whose run folder holds a finished
``best.pt`` is not trained again, an unfinished one continues with ``--resume``. Every finished
arm is evaluated on the test split with ``sspnet eval`` at one scale without the mirrored test
(its metrics JSON), and its record (command, steps, wall time, valid AP50-tiny per epoch, every test metric) is added to ``--out``, which is
rewritten after each arm, so a stopped session keeps what finished.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

#: the recipe every arm shares: the shipped default's (weights/README.md, runs/lite10), from the
#: person backbone so that no arm inherits another's training
RECIPE = [
    "--model", "lite", "--rotate-limit", "0", "--frame-size", "1760x990", "--empty-patches", "--amp",
    "--epochs", "4", "--lr-steps", "4", "--max-steps", "4000", "--device", "cpu", "--seed", "0",
]
ARMS = {
    "sspnet": [],
    "fpn": ["--neck", "fpn"],
    "fpn_same_wall": ["--neck", "fpn"],  # give it the steps SSPNet's wall time buys: --steps fpn_same_wall=N
    "no_wns": ["--no-wns"],
    "bce": ["--attention-loss", "bce"],
    "sspnet_seed1": ["--seed", "1"],
    "fpn_seed1": ["--neck", "fpn", "--seed", "1"],
}


def option(args: list[str], name: str) -> str:
    """The value that follows ``name`` in a command line (the last one wins, as in typer)."""
    last = len(args) - 1 - args[::-1].index(name)
    return args[last + 1]


def finished(run: Path, steps: int) -> bool:
    """Whether the run's last validation was at its last step."""
    curve = valid_curve(run)
    return bool(curve) and curve[-1]["step"] >= steps


def valid_curve(run: Path) -> list[dict]:
    """Valid metrics after each epoch, from the run's metrics.jsonl."""
    out = []
    path = run / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "val" in rec:
                out.append({"epoch": rec["epoch"], "step": rec["step"], **{k: rec["val"].get(k) for k in ("AP50_tiny", "AP25_tiny", "MR50_tiny")}})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--runs", type=Path, required=True, help="folder of the arms' run folders")
    ap.add_argument("--arms", default="sspnet,fpn,no_wns", help=f"comma-separated, of {', '.join(ARMS)}")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--existing", action="append", default=[], metavar="ARM=RUN",
                    help="an arm already trained with this recipe elsewhere (e.g. sspnet=runs/lite10, the shipped default's run)")
    ap.add_argument("--steps", action="append", default=[], metavar="ARM=N", help="another --max-steps for one arm")
    args = ap.parse_args()
    existing = dict(e.split("=", 1) for e in args.existing)
    steps_for = dict(e.split("=", 1) for e in args.steps)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        ap.error(f"unknown arms: {', '.join(unknown)}")
    records = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    done = {r["arm"] for r in records}
    for arm in arms:
        if arm in done:
            continue
        run = Path(existing.get(arm, args.runs / arm))
        recipe = RECIPE + ARMS[arm] + (["--max-steps", steps_for[arm]] if arm in steps_for else [])
        steps = int(option(recipe, "--max-steps"))
        start = time.perf_counter()
        if not finished(run, steps):  # not finished: continue it where it stopped, else start it
            if (run / "last.pt").is_file():
                cmd = ["sspnet", "train", str(args.data), "--out", str(run), "--resume", str(run / "last.pt"),
                       "--epochs", option(recipe, "--epochs"), "--max-steps", str(steps), *(["--amp"] if "--amp" in recipe else [])]
            else:
                cmd = ["sspnet", "train", str(args.data), "--out", str(run), *recipe]
            subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        metrics_path = run / "test_metrics.json"
        t = time.perf_counter()
        subprocess.run(["sspnet", "eval", "--data", str(args.data), "--split", "test", "--weights", str(run / "best.pt"),
                        "--scales", "1", "--no-flip", "--out", str(metrics_path)], check=True)
        records.append({
            "arm": arm,
            "command": " ".join(["sspnet", "train", str(args.data), "--out", str(run), *recipe]),
            "test_eval_wall_s": round(time.perf_counter() - t, 1),
            "wall_s_this_session": round(wall, 1),
            "config": json.loads((run / "config.json").read_text()),
            "valid_by_epoch": valid_curve(run),
            "test": json.loads(metrics_path.read_text()),
        })
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": "ablation at the lite recipe", "machine": machine(), "runs": records}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
