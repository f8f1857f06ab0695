"""Make ``samples/``: three TinyPerson-RF test frames given back their 16:9 shape.

    python docs/make_samples.py --data ../shared/data/tinyperson-rf --frame-size 1760x990

The Roboflow re-export stores TinyPerson's 16:9 video frames squeezed to 640x640 (a person
2.9 px wide and 9.1 px tall at the median). The shipped model trains on the frames resized to
``--frame-size`` (about the videos' own scale), and a drone photo a user brings has its true
shape, so the samples are the same frames resized the same way (bilinear, JPEG quality 92), with
their annotations scaled per axis into ``samples/annotations.json`` (COCO, TinyPerson's flags).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ("bb_V0004_I0001320.jpg", "bb_V0014_I0002480.jpg", "chitube_V0006_I0001780.jpg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the TinyPerson-RF folder")
    parser.add_argument("--frame-size", default="1760x990", help="WIDTHxHEIGHT [1760x990]")
    parser.add_argument("--out", type=Path, default=ROOT / "samples")
    args = parser.parse_args()

    import cv2

    from sspnet_cli.cli.options import parse_frame_size
    from sspnet_cli.data import open_dataset
    from sspnet_cli.data.sample import coco_dict

    width, height = parse_frame_size(args.frame_size)
    dataset = open_dataset(args.data, split="test")
    by_name = {Path(im.file_name).name: im for im in dataset.images}
    images = []
    for name in FRAMES:
        image = by_name[name]
        rgb = cv2.imread(str(image.path))
        big = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
        assert cv2.imwrite(str(args.out / name), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
        resized = image.resized(width, height)
        resized.file_name = name
        images.append(resized)
    gt = coco_dict(images)
    gt["info"] = {
        "description": f"TinyPerson-RF test frames {', '.join(FRAMES)} resized from 640x640 to {width}x{height} (docs/make_samples.py)",
        "licence": "CC BY 4.0 (Roboflow re-export of TinyPerson; TinyPerson: research use)",
    }
    (args.out / "annotations.json").write_text(json.dumps(gt, indent=1) + "\n")
    for im in images:
        print(f"{im.file_name}: {len(im.boxes)} people, {len(im.ignore_boxes)} ignore regions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
