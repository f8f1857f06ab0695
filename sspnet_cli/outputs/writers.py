"""One entry point for result files: the format follows the file's suffix."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from sspnet_cli.errors import SSPNetError
from sspnet_cli.outputs.coco_json import write_coco_json
from sspnet_cli.outputs.csv_table import write_csv
from sspnet_cli.outputs.geojson import write_geojson
from sspnet_cli.outputs.waypoints import write_gpx, write_kml
from sspnet_cli.types import ImageResult

Writer = Callable[[Union[str, Path], Sequence[ImageResult], Optional[dict[str, Any]]], None]

# keep in step with atomic.RESULT_SUFFIXES (which check_writable uses; a test compares them)
WRITERS: dict[str, Writer] = {
    ".geojson": write_geojson,
    ".csv": write_csv,
    ".json": write_coco_json,
    ".gpx": write_gpx,
    ".kml": write_kml,
}


def write_results(path: Union[str, Path], results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> None:
    """Write ``results`` at ``path`` atomically as GeoJSON (``.geojson``), CSV (``.csv``), COCO
    JSON (``.json``), GPX waypoints (``.gpx``) or KML placemarks (``.kml``); suffixes are
    case-insensitive. ``meta`` (small, JSON-able: model,
    options) goes where the format has room for it."""
    suffix = Path(path).suffix.lower()
    writer = WRITERS.get(suffix)
    if writer is None:
        raise SSPNetError(f"{path}: unknown output format {suffix!r}; use one of {', '.join(WRITERS)}")
    writer(path, results, meta)
