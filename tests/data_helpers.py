"""Small builders for dataset fixtures written by the data tests (no files are checked in)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_image(path: Path, width: int = 64, height: int = 48) -> Path:
    """A small grey image (JPEG or PNG by suffix) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(path)
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def ann(ann_id: int, image_id: Any, bbox: Any, category_id: int = 1, **flags: Any) -> dict[str, Any]:
    """A COCO annotation record."""
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **flags}
