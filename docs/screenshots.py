"""Regenerate the README's pictures: docs/report.png and docs/heatmap.png.

    python docs/screenshots.py [--weights weights/sspnet_default.pt] [--chromium /usr/bin/chromium]

Both show the shipped default model's real output on the three sample frames in samples/ (test
frames of TinyPerson-RF, never trained on), from one ``detect`` run with ``--heatmaps``:

* report.png: the review report of that run, shot in headless chromium;
* heatmap.png: the model's attention (scale-selection) maps of the first frame, combined and per
  pyramid level, drawn by the renderer that ``--heatmaps`` uses.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sspnet_cli.api import detect  # noqa: E402
from sspnet_cli.outputs.heatmap import heatmap_images  # noqa: E402
from sspnet_cli.outputs.report import write_report  # noqa: E402
from sspnet_cli.types import ImageResult  # noqa: E402


def model_results(weights: Path | None, work: Path) -> list[ImageResult]:
    """The shipped model's detections and attention maps on the sample frames."""
    frames = sorted(str(p.relative_to(REPO)) for p in (REPO / "samples").glob("*.jpg"))
    summary = detect(frames, work / "samples.geojson", weights=weights, device="cpu", heatmaps=True, save_vis=work / "vis")
    return summary.results


def report_png(results: list[ImageResult], chromium: str, out: Path, weights_name: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="sspnet-shot-"))
    try:
        meta = {"weights": weights_name, "options": {"score_thr": 0.3}}
        summary = write_report(work / "report", results, meta, report_thr=0.3, report_max=2000, heatmaps=True)
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
    maps = dict(result.attention or {})
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
    ap.add_argument("--weights", type=Path, default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sspnet-shot-"))
    try:
        results = model_results(args.weights, work)
        name = args.weights.name if args.weights else "sspnet_default.pt"
        report_png(results, args.chromium, REPO / "docs" / "report.png", name)
        heatmap_png(results[0], REPO / "docs" / "heatmap.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in ("report.png", "heatmap.png"):
        print(REPO / "docs" / name, (REPO / "docs" / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
