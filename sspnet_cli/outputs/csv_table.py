"""CSV output: one row per detection.

Header ``image,x1,y1,x2,y2,score,label``, plus ``lon,lat`` (WGS84 ground point of the box centre,
from :func:`sspnet_cli.geo.positions.positions_of`: a georeferenced raster's own transform or a
drone photo's camera model) when any input has map positions, plus ``position_error_m`` when any
comes from a camera model, plus ``ground_w_m,ground_h_m`` (the box's size on the ground) where
the ground sample distance is known, ``size_plausible`` (``true``/``false``) where the size filter
judged, and ``position_quality`` (``oblique``) where any photo looked far off nadir. Cells are
empty on rows without that value. UTF-8 without a
byte-order mark, ``\\n`` line ends, quoting only where needed (commas, quotes, line breaks).
Pixels have 2 decimals, scores 4, lon/lat 8, errors 2. Images without detections have no rows.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from sspnet_cli.geo.positions import positions_of
from sspnet_cli.atomic import atomic_write
from sspnet_cli.outputs.values import (
    ERROR_DECIMALS,
    LONLAT_DECIMALS,
    PIXEL_DECIMALS,
    SCORE_DECIMALS,
    SIZE_DECIMALS,
    detection_arrays,
    fixed,
    label_name,
    size_properties,
)
from sspnet_cli.types import ImageResult

BASE_COLUMNS = ("image", "x1", "y1", "x2", "y2", "score", "label")
GEO_COLUMNS = ("lon", "lat")
ERROR_COLUMNS = ("position_error_m",)
SIZE_COLUMNS = ("ground_w_m", "ground_h_m")


def write_csv(path: Union[str, Path], results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> None:
    """Write ``results`` as a CSV table at ``path`` (atomically). ``meta`` is not written: CSV
    has no place for it."""
    positions = [positions_of(r) for r in results]
    with_geo = any(p.source != "pixel" for p in positions)
    with_error = any(p.error_m is not None for p in positions)
    with_size = any(p.sizes_m is not None for p in positions)
    with_check = any(p.plausible is not None for p in positions)
    with_quality = any(p.quality for p in positions)
    header = BASE_COLUMNS + (GEO_COLUMNS if with_geo else ()) + (ERROR_COLUMNS if with_error else ())
    header += (SIZE_COLUMNS if with_size else ()) + (("size_plausible",) if with_check else ())
    header += ("position_quality",) if with_quality else ()
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for result, pos in zip(results, positions):
            boxes, scores, labels = detection_arrays(result)
            if len(boxes) == 0:
                continue
            located = pos.located(len(boxes))
            for i in range(len(boxes)):
                row = [result.image, *(fixed(v, PIXEL_DECIMALS) for v in boxes[i])]
                row += [fixed(scores[i], SCORE_DECIMALS), label_name(labels[i])]
                if with_geo:
                    row += [fixed(v, LONLAT_DECIMALS) for v in pos.centres[i]] if located[i] else ["", ""]  # type: ignore[index]
                if with_error:
                    row.append(fixed(pos.error_m[i], ERROR_DECIMALS) if located[i] and pos.error_m is not None else "")
                size = size_properties(pos, i)
                if with_size:
                    row += [fixed(v, SIZE_DECIMALS) for v in size["ground_size_m"]] if "ground_size_m" in size else ["", ""]
                if with_check:
                    row.append(str(size["size_plausible"]).lower() if "size_plausible" in size else "")
                if with_quality:
                    row.append(pos.quality or "")
                writer.writerow(row)
