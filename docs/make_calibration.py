"""Write the int8 calibration tiles shipped in ``weights/calibration/``.

    python docs/make_calibration.py --data ../shared/data/tinyperson-rf

``detect --precision int8`` (the default on CPUs with int8 dot-product units) runs the dense
graph quantised to int8; the activation ranges it needs are measured once, when the checkpoint
is exported, on these tiles (``sspnet_cli.inference.quantize``). They are 640x512 crops of
frames of the *train* split of TinyPerson-RF (never the valid or test frames the model is
measured on), resized to 1760x990 as the shipped model was trained, each centred on one of the
frame's people (picked at random, seeded), so the ranges are those of sea and beach scenes with
people in them. Re-running the script writes the same files.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FRAME = (1760, 990)
TILE = (640, 512)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="TinyPerson-RF folder (annotations/tiny_set_train.json)")
    ap.add_argument("--out", default=str(REPO / "weights" / "calibration"))
    ap.add_argument("--tiles", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = Path(args.data)
    ann = json.loads((data / "annotations" / "tiny_set_train.json").read_text())
    people: dict[int, list[list[float]]] = {}
    for a in ann["annotations"]:
        if not a.get("ignore") and not a.get("iscrowd"):
            people.setdefault(a["image_id"], []).append(a["bbox"])
    images = sorted((im for im in ann["images"] if len(people.get(im["id"], [])) >= 5), key=lambda im: im["file_name"])
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jpg"):
        old.unlink()
    for im in rng.sample(images, args.tiles):
        frame = cv2.imread(str(data / "train" / im["file_name"]))
        sx, sy = FRAME[0] / frame.shape[1], FRAME[1] / frame.shape[0]
        frame = cv2.resize(frame, FRAME, interpolation=cv2.INTER_LINEAR)
        x, y, w, h = rng.choice(people[im["id"]])
        cx, cy = (x + w / 2) * sx, (y + h / 2) * sy
        x0 = int(min(max(cx - TILE[0] / 2, 0), FRAME[0] - TILE[0]))
        y0 = int(min(max(cy - TILE[1] / 2, 0), FRAME[1] - TILE[1]))
        name = Path(im["file_name"]).stem[:40]
        cv2.imwrite(str(out / f"{name}_{x0}_{y0}.jpg"), frame[y0 : y0 + TILE[1], x0 : x0 + TILE[0]], [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.tiles} tiles to {out}")


if __name__ == "__main__":
    main()
