"""COCO-style JSON output, loadable by pycocotools (``COCO(path)``, then ``loadRes``).

``images`` lists every input (ids from 1 in input order, detections or not), ``annotations``
every detection (ids from 1) with ``bbox`` [x, y, w, h] in pixels (0.01 px), ``score`` (1e-4),
``category_id`` (1 = person), plus ``area`` and ``iscrowd: 0`` so the file can also serve as
ground truth for ``COCOeval``. Run metadata goes in ``info["sspnet:run"]``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from sspnet_cli.atomic import atomic_write
from sspnet_cli.outputs.values import LABEL_NAMES, PIXEL_DECIMALS, SCORE_DECIMALS, detection_arrays, label_name, plain_json, rounded
from sspnet_cli.types import ImageResult


def coco_dict(results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The COCO dictionary of ``results``."""
    images, annotations = [], []
    names = dict(LABEL_NAMES)
    for image_id, result in enumerate(results, start=1):
        images.append({"id": image_id, "file_name": result.image, "width": int(result.width), "height": int(result.height)})
        boxes, scores, labels = detection_arrays(result)
        for label in set(labels.tolist()) - set(names):
            names[label] = label_name(label)
        for i in range(len(boxes)):
            x1, y1, x2, y2 = (rounded(v, PIXEL_DECIMALS) for v in boxes[i])
            w = rounded(x2 - x1, PIXEL_DECIMALS) if None not in (x1, x2) else None
            h = rounded(y2 - y1, PIXEL_DECIMALS) if None not in (y1, y2) else None
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(labels[i]),
                "bbox": [x1, y1, w, h],
                "area": rounded(w * h, PIXEL_DECIMALS) if None not in (w, h) else None,
                "iscrowd": 0,
                "score": rounded(scores[i], SCORE_DECIMALS),
            })
    categories = [{"id": k, "name": v} for k, v in sorted(names.items())]
    info = {"description": "sspnet detections", "sspnet:run": plain_json(meta or {})}
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def write_coco_json(path: Union[str, Path], results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> None:
    """Write ``results`` as COCO-style JSON at ``path`` (atomically)."""
    text = json.dumps(coco_dict(results, meta), ensure_ascii=False, allow_nan=False)
    with atomic_write(path, "w", newline="\n") as f:
        f.write(text)
        f.write("\n")
