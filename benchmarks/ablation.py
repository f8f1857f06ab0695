"""The paper's ablation (SSPNet neck vs FPN, WNS, the attention loss) at the lite recipe's budget.

    nice python benchmarks/ablation.py --data ../shared/data/tinyperson-rf --runs runs/ablation \
        --arms sspnet,fpn,no_wns --existing sspnet=runs/lite10 --out benchmarks/results/ablation_cpu.json

(``--existing sspnet=runs/lite10``: the shipped default's own run is the SSPNet arm.)

Each arm is one ``sspnet train`` of the same recipe, seed and patches (only the arm's option
differs), run one after another in the background; an arm whose last validation was at its last
step is not trained again, an unfinished one continues with ``--resume`` (``--no-train``: leave
it). Every finished arm's ``last.pt`` (the end of the same budget; no pick on the small valid
split) is evaluated on the test split with ``sspnet eval`` at one scale without the mirrored
test, ``--upsampled ARM`` also at ``--scales 1,2``; ``--speed`` times a tile of each, the arms
interleaved. Each arm's record (command, config, valid metrics per epoch, training time and
patches/s from its log, every test metric) goes into ``--out``, rewritten after each arm, so a
stopped session keeps what finished; a record's evaluations are not repeated.
"""
from __future__ import annotations

import argparse
import json
import statistics
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
    # the steps SSPNet's wall time buys (--steps fpn_same_wall=N); one epoch more so that the run
    # reaches them, with the lr step moved along so that the lr never decays, as in the other arms
    "fpn_same_wall": ["--neck", "fpn", "--epochs", "5", "--lr-steps", "5"],
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


def train_speed(run: Path, after_step: int = 0) -> dict:
    """Training time and speed from the run's log records (each covers ``log_every`` steps at the
    patches/s it logged): the seconds spent in training steps (validation excluded, and slowed
    by whatever else ran then) and the median patches/s, over steps after ``after_step`` (to
    compare arms on one machine where a run moved between machines)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    batch = json.loads((run / "config.json").read_text()).get("batch_size", 2)
    logged = sorted((r["step"], r["patches_per_s"]) for r in records if "patches_per_s" in r)
    seconds, prev, speeds = 0.0, 0, []
    for step, pps in logged:
        if pps > 0:
            seconds += (step - prev) * batch / pps
            if step > after_step:
                speeds.append(pps)
        prev = step
    speeds.sort()
    return {"train_steps_s": round(seconds, 1), "median_patches_per_s": speeds[len(speeds) // 2] if speeds else None,
            "median_after_step": after_step}


def tile_seconds(weights: list[Path], frames: list[Path], rounds: int = 3) -> list[float]:
    """Seconds a 640x512 tile at one scale without the mirrored test, for each checkpoint, end to
    end through ``Detector.run`` (onnxruntime where installed, as ``detect`` runs it) over
    ``frames``; the checkpoints take turns round by round so that any load on the machine falls
    on all alike; the median round counts."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sspnet_cli.inference.engine import Detector

    detectors = [Detector(w, device="cpu", scales=(1.0,), flip=False) for w in weights]
    for d in detectors:
        list(d.run(frames[:1]))  # warm-up: export cache, session start, first allocations
    per_tile: list[list[float]] = [[] for _ in weights]
    for _ in range(rounds):
        for i, d in enumerate(detectors):
            counted = [0]
            t = time.perf_counter()
            list(d.run(frames, on_tiles=lambda n: counted.__setitem__(0, counted[0] + n)))
            per_tile[i].append((time.perf_counter() - t) / max(1, counted[0]))
    return [round(statistics.median(t), 3) for t in per_tile]


def evaluate(data: Path, weights: Path, out: Path, scales: str) -> dict:
    """``sspnet eval`` of the test split at ``scales`` without the mirrored test: its metrics,
    wall time and the file of its detections (``--save-detections``, for the bootstrap)."""
    t = time.perf_counter()
    detections = out.with_name(out.stem + "_detections.json")
    done = [p for p in (out, detections) if p.is_file() and p.stat().st_mtime > weights.stat().st_mtime]
    if len(done) == 2:  # evaluated before (a stopped bench run): the same files, not made again
        return {"scales": [float(v) for v in scales.split(",")], "wall_s": None, "detections": str(detections),
                "metrics": json.loads(out.read_text())}
    subprocess.run(["sspnet", "eval", "--data", str(data), "--split", "test", "--weights", str(weights),
                    "--scales", scales, "--no-flip", "--out", str(out), "--save-detections", str(detections)], check=True)
    return {"scales": [float(v) for v in scales.split(",")], "wall_s": round(time.perf_counter() - t, 1),
            "detections": str(detections), "metrics": json.loads(out.read_text())}


def bootstrap(data: Path, detections: dict[str, Path], baseline: str, rounds: int, key: str = "AP50_tiny", seed: int = 0) -> dict:
    """Paired bootstrap over the test frames: the frames are drawn with replacement ``rounds``
    times, every arm is scored on the same draw, and each arm's ``key`` and its difference from
    ``baseline`` are summarised (mean, 2.5 and 97.5 percentiles, share of draws where the arm is
    ahead). It says how much of a difference the choice of 55 test frames alone can make."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sspnet_cli.data import open_dataset
    from sspnet_cli.evaluation import evaluate_tinyperson
    from sspnet_cli.evaluation.run import ground_truth

    gt = ground_truth(open_dataset(data, split="test"))
    ids = [im["id"] for im in gt["images"]]
    images = {im["id"]: im for im in gt["images"]}
    anns: dict[int, list] = {i: [] for i in ids}
    for a in gt["annotations"]:
        anns[a["image_id"]].append(a)
    dets = {}
    for arm, path in detections.items():
        by_image: dict[int, list] = {i: [] for i in ids}
        for d in json.loads(Path(path).read_text()):
            by_image[d["image_id"]].append(d)
        dets[arm] = by_image
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {arm: [] for arm in detections}
    for _ in range(rounds):
        draw = rng.choice(ids, size=len(ids), replace=True)
        g_images, g_anns = [], []
        for new_id, old in enumerate(draw, 1):  # a frame drawn twice counts twice, under new ids
            g_images.append({**images[old], "id": new_id})
            g_anns += [{**a, "id": len(g_anns) + k + 1, "image_id": new_id} for k, a in enumerate(anns[old])]
        for arm, by_image in dets.items():
            records = [{**d, "image_id": new_id} for new_id, old in enumerate(draw, 1) for d in by_image[old]]
            values[arm].append(evaluate_tinyperson({"images": g_images, "annotations": g_anns}, records).metrics[key])

    def summary(v: list[float]) -> dict:
        a = np.asarray(v, float)
        return {"mean": round(float(a.mean()), 2), "p2_5": round(float(np.percentile(a, 2.5)), 2), "p97_5": round(float(np.percentile(a, 97.5)), 2)}

    out = {"metric": key, "rounds": rounds, "frames": len(ids), "baseline": baseline, "arms": {}}
    for arm, v in values.items():
        entry = summary(v)
        if arm != baseline:
            diff = np.asarray(v) - np.asarray(values[baseline])
            entry["minus_baseline"] = {**summary(list(diff)), "share_ahead": round(float((diff > 0).mean()), 3)}
        out["arms"][arm] = entry
    return out


#: the paper's Faster R-CNN numbers (Table I: FPN baseline and SSPNet; Table III: the parts), AP50-tiny / MR50-tiny
PAPER = {
    "sspnet": {"AP50_tiny": 59.13, "MR50_tiny": 82.79, "row": "SEM + SSM + WNS, dice+BCE attention loss (SSPNet)"},
    "fpn": {"AP50_tiny": 57.05, "MR50_tiny": 84.12, "row": "FPN baseline"},
    "fpn_same_wall": {"row": "FPN baseline, SSPNet's wall time"},
    "no_wns": {"AP50_tiny": 58.43, "row": "SEM + SSM, no WNS"},
    "bce": {"AP50_tiny": 57.86, "row": "SEM + SSM + WNS, plain BCE attention loss"},
    "sspnet_seed1": {"row": "SSPNet, seed 1"},
    "fpn_seed1": {"row": "FPN baseline, seed 1"},
}
COLUMNS = ["AP50_tiny", "AP50_tiny1", "AP50_tiny2", "AP50_tiny3", "AP50_small", "AP25_tiny", "AP75_tiny", "MR50_tiny"]


def markdown(doc: dict) -> str:
    """The results as the tables of docs/ablation.md: the test split (Table I's columns) beside
    the paper's, the valid split per epoch, the bootstrap and the costs."""
    runs = doc["runs"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["| arm | " + " | ".join(c.replace("_", "-") for c in COLUMNS) + " | paper AP50-tiny | paper MR50-tiny |",
             "|---|" + "---:|" * (len(COLUMNS) + 2)]
    for r in runs:
        m, paper = r["test"]["metrics"], PAPER.get(r["arm"], {})
        lines.append(f"| {paper.get('row', r['arm'])} | " + " | ".join(fmt(m.get(c)) for c in COLUMNS)
                     + f" | {fmt(paper.get('AP50_tiny'))} | {fmt(paper.get('MR50_tiny'))} |")
    for r in runs:
        if "test_upsampled" in r:
            m = r["test_upsampled"]["metrics"]
            scales = ",".join(f"{s:g}" for s in r["test_upsampled"]["scales"])
            lines.append(f"| {PAPER.get(r['arm'], {}).get('row', r['arm'])}, `--scales {scales}` | " + " | ".join(fmt(m.get(c)) for c in COLUMNS) + " | | |")
    lines += ["", "| arm | valid AP50-tiny by epoch (step) | spread of the last two | training steps, s | median patches/s | s a tile |", "|---|---|---:|---:|---:|---:|"]
    for r in runs:
        curve = r["valid_by_epoch"]
        by_epoch = ", ".join(f"{v['AP50_tiny']:.2f} ({v['step']})" for v in curve)
        spread = abs(curve[-1]["AP50_tiny"] - curve[-2]["AP50_tiny"]) if len(curve) > 1 else None
        tr = r["training"]
        tile = r.get("tile_s", {}).get("seconds_per_tile_median")
        lines.append(f"| {r['arm']} | {by_epoch} | {fmt(spread)} | {tr['train_steps_s']:.0f} | {tr['median_patches_per_s']} | {fmt(tile) if tile else 'n/a'} |")
    boot = [r for r in runs if "test_bootstrap" in r]
    if boot:
        b0 = boot[0]["test_bootstrap"]
        lines += ["", f"Paired bootstrap over the {b0['frames']} test frames ({b0['rounds']} draws), AP50-tiny:", "",
                  f"| arm | mean | 95 % interval | minus {b0['baseline']} | 95 % interval | draws ahead |", "|---|---:|---|---:|---|---:|"]
        for r in boot:
            b = r["test_bootstrap"]
            d = b.get("minus_baseline")
            tail = f" {d['mean']:.2f} | {d['p2_5']:.2f} to {d['p97_5']:.2f} | {100 * d['share_ahead']:.0f} % |" if d else " | | |"
            lines.append(f"| {r['arm']} | {b['mean']:.2f} | {b['p2_5']:.2f} to {b['p97_5']:.2f} |" + tail)
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="the dataset (not needed with --table)")
    ap.add_argument("--runs", type=Path, help="folder of the arms' run folders (not needed with --table)")
    ap.add_argument("--arms", default="sspnet,fpn,no_wns", help=f"comma-separated, of {', '.join(ARMS)}")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--existing", action="append", default=[], metavar="ARM=RUN",
                    help="an arm already trained with this recipe elsewhere (e.g. sspnet=runs/lite10, the shipped default's run)")
    ap.add_argument("--steps", action="append", default=[], metavar="ARM=N", help="another --max-steps for one arm")
    ap.add_argument("--no-train", action="store_true", help="evaluate the finished arms only; train nothing")
    ap.add_argument("--upsampled", action="append", default=[], metavar="ARM",
                    help="also test this arm with --scales 1,2 (the reference's up-sampled test)")
    ap.add_argument("--speed", action="store_true", help="time a tile of every finished arm, interleaved (on a quiet machine)")
    ap.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="paired bootstrap of AP50-tiny over the test frames, N draws, every arm against the first")
    ap.add_argument("--speed-after", action="append", default=[], metavar="ARM=STEP",
                    help="median training patches/s over steps after STEP only (a run that moved machines)")
    ap.add_argument("--table", action="store_true", help="print --out's results as the Markdown tables of docs/ablation.md, run nothing")
    args = ap.parse_args()
    if args.table:
        print(markdown(json.loads(args.out.read_text())), end="")
        return 0
    if args.data is None or args.runs is None:
        ap.error("--data and --runs are needed unless --table")
    existing = dict(e.split("=", 1) for e in args.existing)
    steps_for = dict(e.split("=", 1) for e in args.steps)
    speed_after = {k: int(v) for k, v in (e.split("=", 1) for e in args.speed_after)}
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        ap.error(f"unknown arms: {', '.join(unknown)}")
    records = {r["arm"]: r for r in (json.loads(args.out.read_text())["runs"] if args.out.is_file() else [])}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"benchmark": "ablation at the lite recipe", "machine": machine(), "runs": list(records.values())}
        tmp = args.out.with_suffix(".part")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(args.out)

    for arm in arms:
        run = Path(existing.get(arm, args.runs / arm))
        recipe = RECIPE + ARMS[arm] + (["--max-steps", steps_for[arm]] if arm in steps_for else [])
        steps = int(option(recipe, "--max-steps"))
        if not finished(run, steps):  # not finished: continue it where it stopped, else start it
            if args.no_train:
                continue
            if (run / "last.pt").is_file():
                cmd = ["sspnet", "train", str(args.data), "--out", str(run), "--resume", str(run / "last.pt"),
                       "--epochs", option(recipe, "--epochs"), "--max-steps", str(steps), *(["--amp"] if "--amp" in recipe else [])]
            else:
                cmd = ["sspnet", "train", str(args.data), "--out", str(run), *recipe]
            subprocess.run(cmd, check=True)
        record = records.setdefault(arm, {"arm": arm})
        record.update({
            "command": " ".join(["sspnet", "train", str(args.data), "--out", str(run), *recipe]),
            "run": str(run),
            # every arm is tested at the end of the same budget: no pick on the 34-frame valid split
            "weights": str(run / "last.pt"),
            "config": json.loads((run / "config.json").read_text()),
            "valid_by_epoch": valid_curve(run),
            "training": train_speed(run, speed_after.get(arm, 0)),
        })
        if "test" not in record:
            record["test"] = evaluate(args.data, run / "last.pt", run / "test_metrics.json", "1")
        if arm in args.upsampled and "test_upsampled" not in record:
            record["test_upsampled"] = evaluate(args.data, run / "last.pt", run / "test_metrics_1_2.json", "1,2")
        save()
    tested = [a for a in arms if a in records and "detections" in records[a].get("test", {})]
    if args.bootstrap and len(tested) > 1:
        summary = bootstrap(args.data, {a: Path(records[a]["test"]["detections"]) for a in tested}, tested[0], args.bootstrap)
        for arm in tested:
            records[arm]["test_bootstrap"] = {k: v for k, v in summary.items() if k != "arms"} | summary["arms"][arm]
        save()
    if args.speed:
        timed = [a for a in arms if a in records]
        frames = sorted((Path(__file__).resolve().parents[1] / "samples").glob("*.jpg"))
        for arm, seconds in zip(timed, tile_seconds([Path(records[a]["weights"]) for a in timed], frames)):
            records[arm]["tile_s"] = {"seconds_per_tile_median": seconds, "frames": [f.name for f in frames],
                                      "scales": [1.0], "flip": False, "machine": machine()}
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
