"""Writing a review report: crops, overlays, thumbnails, heatmaps, the overview and the page.

Layout of the report folder (every link in the page is a relative path inside it)::

    index.html              the page
    assets/report.css, assets/report.js
    crops/000001.jpg ...    one JPEG per listed detection, by rank (best score first)
    overlays/0001_name.jpg  each frame with detections, boxes drawn (at most 4096 px a side)
    thumbs/0001_name.jpg    frames without a map position, for the overview grid
    heatmaps/0001_name_attention_P2.png ...   with ``heatmaps=True`` and attention maps
    .sspnet-report          marks the folder as a report sspnet may replace

Frames are read one at a time and closed before the next (huge rasters through window and
decimated reads only). A frame that cannot be opened is not fatal: its detections are still
listed, without pictures, and a warning says why.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import cv2

from sspnet_cli import __version__
from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.geo.positions import Positions, positions_of
from sspnet_cli.imagery.sources import ImageSource, open_source
from sspnet_cli.geo.transform import check_source_georef
from sspnet_cli.atomic import atomic_write
from sspnet_cli.config import REPORT_MAX, REPORT_THR
from sspnet_cli.outputs.heatmap import save_heatmaps
from sspnet_cli.outputs.values import size_properties
from sspnet_cli.outputs.overlay import DEFAULT_MAX_SIDE, draw_boxes
from sspnet_cli.outputs.report.assets import write_assets
from sspnet_cli.outputs.report.crops import encode_jpeg, render_crop
from sspnet_cli.outputs.report.folder import building
from sspnet_cli.outputs.report.overview import Footprint, MapPoint, band_rings, group_sites, overview_svg, raster_footprint
from sspnet_cli.outputs.report.page import ImageCard, PageData, render_page
from sspnet_cli.outputs.report.selection import Entry, select_entries
from sspnet_cli.outputs.values import detection_arrays
from sspnet_cli.types import ImageResult

DEFAULT_REPORT_THR = REPORT_THR
DEFAULT_REPORT_MAX = REPORT_MAX
THUMB_PX = 320
OVERLAY_QUALITY = 90

ImageOpener = Callable[[ImageResult], ImageSource]


@dataclass
class ReportSummary:
    """What :func:`write_report` wrote."""

    folder: Path
    index: Path
    listed: int  # detections on the page
    above: int  # detections scoring at least the threshold
    left_out: int  # of those, not on the page (the limit)
    images: int
    heatmaps: int  # frames with heatmaps written
    warnings: list[str] = field(default_factory=list)


def _slug(index: int, name: str) -> str:
    """An ASCII file stem for frame ``index`` (0-based): ``0001_DJI_0005``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.replace("\\", "/")).stem).strip("._-")[:60]
    return f"{index + 1:04d}_{stem}" if stem else f"{index + 1:04d}"


def _report_id(results: Sequence[ImageResult]) -> str:
    """Names the browser's saved decisions: the same frames give the same id, so a report built
    again (another threshold, another limit) keeps the decisions already made."""
    names = json.dumps([r.image for r in results], ensure_ascii=False)
    return hashlib.sha1(names.encode("utf-8")).hexdigest()[:16]


def default_opener(meta: Optional[dict[str, Any]] = None) -> ImageOpener:
    """Open a result's frame from its ``image`` path, with the run's ``bands`` option if any."""
    options = (meta or {}).get("options")
    bands = options.get("bands") if isinstance(options, dict) else None

    def open_image(result: ImageResult) -> ImageSource:
        return check_source_georef(open_source(result.image, bands=bands or None))

    return open_image


def _write_bytes(path: Path, data: bytes) -> None:
    # no per-file fsync: the whole folder is swapped in at the end (see folder.building)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _with_source_facts(result: ImageResult, source: ImageSource) -> ImageResult:
    """``result`` completed from its open frame: size when unknown (results read from GeoJSON or
    CSV), georeferencing when the file did not carry it."""
    changes: dict[str, Any] = {}
    if result.width <= 0 or result.height <= 0:
        changes.update(width=source.width, height=source.height)
    if result.georef is None and source.georef is not None:
        changes["georef"] = source.georef
    return dataclasses.replace(result, **changes) if changes else result


def _place(entries: list[Entry], positions: Positions) -> bool:
    """Fill the entries' lon/lat (and ground size, size verdict, position quality) from
    ``positions``; True when the frame has map positions."""
    for entry in entries:
        size = size_properties(positions, entry.index)
        if "ground_size_m" in size:
            entry.size_m = tuple(size["ground_size_m"])  # type: ignore[assignment]
            entry.plausible = size.get("size_plausible")
        entry.quality = positions.quality
    if positions.source == "pixel" or positions.centres is None:
        return False
    for entry in entries:
        lon, lat = (float(v) for v in positions.centres[entry.index])
        if math.isfinite(lon) and math.isfinite(lat):
            entry.lonlat = (lon, lat)
            entry.position_source = positions.source
            if positions.error_m is not None and math.isfinite(float(positions.error_m[entry.index])):
                entry.error_m = float(positions.error_m[entry.index])
    return True


class _FrameWriter:
    """Writes the pictures of one frame into the report being built."""

    def __init__(self, work: Path, heatmaps: bool) -> None:
        self.work = work
        self.heatmaps = heatmaps

    def write(self, result: ImageResult, stem: str, source: ImageSource, entries: list[Entry], card: ImageCard, thumb: bool) -> None:
        boxes, scores, _ = detection_arrays(result)
        for entry in entries:
            name = f"crops/{entry.rank:06d}.jpg"
            _write_bytes(self.work / name, encode_jpeg(render_crop(source, entry.box)))
            entry.crop = name
        maps = (result.attention or None) if self.heatmaps else None
        if not (len(boxes) or thumb or maps):
            return
        rgb, _ = source.read_overview(DEFAULT_MAX_SIDE)
        if maps:
            paths = save_heatmaps(self.work / "heatmaps", stem, rgb, maps)
            card.heatmaps = {level: path.relative_to(self.work).as_posix() for level, path in paths.items()}
        h, w = rgb.shape[:2]
        if len(boxes):
            draw_boxes(rgb, boxes, scores, scale=(w / source.width, h / source.height))
            card.overlay = f"overlays/{stem}.jpg"
            _write_bytes(self.work / card.overlay, encode_jpeg(rgb, OVERLAY_QUALITY))
            for entry in entries:
                entry.overlay = card.overlay
        if thumb:
            scale = min(1.0, THUMB_PX / max(w, h))
            small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            card.thumb = f"thumbs/{stem}.jpg"
            _write_bytes(self.work / card.thumb, encode_jpeg(small))


def write_report(
    out_dir: Union[str, Path],
    results: Sequence[ImageResult],
    meta: Optional[dict[str, Any]] = None,
    report_thr: float = DEFAULT_REPORT_THR,
    report_max: int = DEFAULT_REPORT_MAX,
    heatmaps: bool = False,
    *,
    failures: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    open_image: Optional[ImageOpener] = None,
    coverage_bands: Sequence[dict[str, Any]] = (),
) -> ReportSummary:
    """Write a self-contained review report of ``results`` into the folder ``out_dir``.

    Lists every detection scoring at least ``report_thr`` (best first, at most ``report_max``)
    as a crop with context. ``meta`` is the run's metadata; the page shows ``weights``,
    ``options`` (a dict), ``seconds`` (run time), ``device`` and ``results`` (the results file)
    when present, and ``options["bands"]`` is used to read the frames. ``heatmaps`` draws each
    frame's ``result.attention`` (the page says when there is none). ``failures`` are
    (input, problem) pairs of inputs that failed; ``notes`` are lines for the summary.
    ``open_image`` opens a result's frame (default: :func:`open_source` of ``result.image``).
    ``coverage_bands`` (the POD bands of ``detect --coverage``) are drawn under the overview map.

    The folder is replaced whole at the end (see :mod:`~sspnet_cli.outputs.report.folder`);
    frames that cannot be opened only lose their pictures, and are named in ``warnings``.
    """
    if not (isinstance(report_thr, (int, float)) and math.isfinite(report_thr)):
        raise SSPNetError(f"the report threshold must be a number, got {report_thr!r}")
    if report_max < 0:
        raise SSPNetError(f"the report limit must not be negative, got {report_max}")
    meta = dict(meta or {})
    opener = open_image or default_opener(meta)
    selection = select_entries(results, float(report_thr), int(report_max))
    by_result: dict[int, list[Entry]] = {}
    for entry in selection.entries:
        by_result.setdefault(entry.result, []).append(entry)
    warnings: list[str] = []
    cards: list[ImageCard] = []
    footprints: list[Footprint] = []
    with building(out_dir) as work:
        write_assets(work)
        frames = _FrameWriter(work, heatmaps)
        for r, result in enumerate(results):
            entries = by_result.get(r, [])
            card = ImageCard(result.image, len(result.detections), len(entries))
            stem = _slug(r, result.image)
            try:
                source: Optional[ImageSource] = opener(result)
            except (SSPNetError, OSError) as exc:
                source = None
                card.problem = "image not available"
                warnings.append(f"{result.image}: cannot open it ({exc}); its detections are listed without pictures")
            if source is not None:
                with source:
                    result = _with_source_facts(result, source)
                    footprint = raster_footprint(result)
                    try:
                        frames.write(result, stem, source, entries, card, thumb=footprint is None)
                    except (InputError, MemoryError) as exc:  # reading the frame; writing errors are fatal
                        card.problem = "image not readable"
                        warnings.append(f"{result.image}: cannot read it ({exc or 'out of memory'}); some pictures are missing")
            else:
                footprint = raster_footprint(result)
            try:
                placed = _place(entries, positions_of(result))
            except SSPNetError as exc:
                placed = False
                warnings.append(f"{result.image}: no map positions ({exc})")
            if footprint is not None:
                footprints.append(Footprint(footprint, card.overlay, f"{result.image}: {card.detections:,} detection(s)"))
            card.on_map = footprint is not None or placed
            cards.append(card)
        points = [
            MapPoint(e.lonlat[0], e.lonlat[1], e.score, f"#d{e.rank}", f"#{e.rank} {e.score:.2f} {e.image}")
            for e in selection.entries
            if e.lonlat is not None
        ]
        page = PageData(
            report_id=_report_id(results),
            selection=selection,
            images=cards,
            map_svgs=[svg for fps, pts in group_sites(footprints, points) if (svg := overview_svg(fps, pts, band_rings(coverage_bands)))],
            meta=meta,
            failures=list(failures),
            notes=list(notes) + warnings,
            heatmaps_requested=heatmaps,
            created=datetime.now().astimezone().isoformat(timespec="seconds"),
            version=__version__,
        )
        with atomic_write(work / "index.html", "w", newline="\n") as f:
            f.write(render_page(page))
    folder = Path(out_dir)
    return ReportSummary(
        folder, folder / "index.html", len(selection.entries), selection.above, selection.left_out,
        len(results), sum(1 for c in cards if c.heatmaps), warnings,
    )
