"""Regenerate the README's pictures: docs/report.png and docs/heatmap.png.

    python docs/screenshots.py [--shared ../shared] [--chromium /usr/bin/chromium]

No trained default model ships yet (issue 9 needs a GPU), so both pictures are drawn from the
ground truth of the three TinyPerson-RF test frames in samples/, with the code that draws a
model's output:

* report.png: ``write_report`` over the frames' annotated people as "detections" of score 1.0,
  shot in headless chromium;
* heatmap.png: the SSPNet attention *targets* of one frame (what the attention loss trains the
  scale-selection maps towards: each person painted on the pyramid level of its size) drawn by
  the heatmap renderer that ``--heatmaps`` uses for a model's maps, combined and per level.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sspnet_cli.model.attention import attention_targets  # noqa: E402
from sspnet_cli.outputs.heatmap import heatmap_images  # noqa: E402
from sspnet_cli.outputs.report import write_report  # noqa: E402
from sspnet_cli.types import Detections, ImageResult  # noqa: E402


def ground_truth(shared: Path) -> list[ImageResult]:
    data = json.loads((shared / "data" / "tinyperson-rf" / "annotations" / "tiny_set_test.json").read_text())
    results = []
    for path in sorted((REPO / "samples").glob("*.jpg")):
        image = next(im for im in data["images"] if Path(im["file_name"]).name == path.name)
        boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == image["id"] and not a.get("ignore")]
        xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=torch.float32).reshape(-1, 4)
        n = len(xyxy)
        results.append(ImageResult(str(path.relative_to(REPO)), image["width"], image["height"],
                                   Detections(xyxy, torch.ones(n), torch.ones(n, dtype=torch.int64))))
    return results


def report_png(results: list[ImageResult], chromium: str, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="sspnet-shot-"))
    try:
        meta = {"weights": "ground truth of the sample frames (no trained model ships yet)", "options": {"score_thr": 0.3}}
        summary = write_report(work / "report", results, meta, report_thr=0.3, report_max=2000)
        shot = work / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1280,1400", "--virtual-time-budget=3000", f"--screenshot={shot}",
                        summary.index.resolve().as_uri()], check=True, capture_output=True, cwd=REPO)
        picture = cv2.imread(str(shot))
        picture = cv2.resize(picture, (960, round(picture.shape[0] * 960 / picture.shape[1])), interpolation=cv2.INTER_AREA)
        save_small_png(out, cv2.cvtColor(picture, cv2.COLOR_BGR2RGB))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def heatmap_png(result: ImageResult, out: Path) -> None:
    rgb = cv2.cvtColor(cv2.imread(str(REPO / result.image)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    sizes = [(-(-h // s), -(-w // s)) for s in (4, 8, 16, 32)]
    targets = attention_targets([result.detections.boxes], (h, w), sizes)
    maps = {f"P{k + 2}": t[0].numpy() for k, t in enumerate(targets)}
    pictures = dict(heatmap_images(rgb, maps))
    small = [cv2.resize(pictures[k], (320, 320), interpolation=cv2.INTER_AREA) for k in ("P2", "P3", "P4", "P5")]
    big = cv2.resize(pictures["combined"], (640, 640), interpolation=cv2.INTER_AREA)
    grid = np.concatenate([np.concatenate(small[:2], axis=1), np.concatenate(small[2:], axis=1)], axis=0)
    sheet = np.concatenate([big, grid], axis=1)
    for text, (x, y) in [("combined", (8, 24)), ("P2", (648, 24)), ("P3", (968, 24)), ("P4", (648, 344)), ("P5", (968, 344))]:
        cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    sheet = cv2.resize(sheet, (960, 480), interpolation=cv2.INTER_AREA)
    save_small_png(out, sheet)


def save_small_png(path: Path, rgb: np.ndarray) -> None:
    """A 256-colour PNG: a third of the size of a full-colour one, no visible loss here."""
    from PIL import Image

    Image.fromarray(rgb).quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    results = ground_truth(args.shared)
    report_png(results, args.chromium, REPO / "docs" / "report.png")
    heatmap_png(results[0], REPO / "docs" / "heatmap.png")
    for name in ("report.png", "heatmap.png"):
        print(REPO / "docs" / name, (REPO / "docs" / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
