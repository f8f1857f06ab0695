"""CSV output: one row per detection.

Header ``image,x1,y1,x2,y2,score,label``, plus ``lon,lat`` (WGS84 centre of the box) when any
input is georeferenced; those two cells are empty on rows of images that are not. UTF-8 without
a byte-order mark, ``\\n`` line ends, quoting only where needed (commas, quotes, line breaks).
Pixels have 2 decimals, scores 4, lon/lat 8. Images without detections have no rows.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from sspnet_cli.geo.transform import box_centers_lonlat
from sspnet_cli.outputs.atomic import atomic_write
from sspnet_cli.outputs.values import LONLAT_DECIMALS, PIXEL_DECIMALS, SCORE_DECIMALS, detection_arrays, fixed, label_name
from sspnet_cli.types import ImageResult

BASE_COLUMNS = ("image", "x1", "y1", "x2", "y2", "score", "label")
GEO_COLUMNS = ("lon", "lat")


def write_csv(path: Union[str, Path], results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> None:
    """Write ``results`` as a CSV table at ``path`` (atomically). ``meta`` is not written: CSV
    has no place for it."""
    with_geo = any(r.georef is not None for r in results)
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(BASE_COLUMNS + (GEO_COLUMNS if with_geo else ()))
        for result in results:
            boxes, scores, labels = detection_arrays(result)
            if len(boxes) == 0:
                continue
            centres = box_centers_lonlat(result.georef, boxes) if result.georef is not None else None
            for i in range(len(boxes)):
                row = [result.image, *(fixed(v, PIXEL_DECIMALS) for v in boxes[i])]
                row += [fixed(scores[i], SCORE_DECIMALS), label_name(labels[i])]
                if with_geo:
                    row += [fixed(v, LONLAT_DECIMALS) for v in centres[i]] if centres is not None else ["", ""]
                writer.writerow(row)
