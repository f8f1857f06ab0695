"""Waypoints for the field: GPX 1.1 (handhelds, CalTopo/SARTopo imports) and KML 2.2 (Google
Earth), one point per detection that has a map position.

Both are written with the standard library's XML writer (``xml.etree``), which escapes every
name and description, so no template can break on a photo named ``a&b <1>.jpg``.

* Order and rank: detections of the whole run by score, best first; ``#1`` is the best.
* GPX ``<wpt lat lon>``: the box centre's ground point (the CSV's ``lon,lat``); ``<time>`` the
  photo's EXIF DateTimeOriginal where known (camera local time, as the camera wrote it: no zone);
  ``<name>`` rank and score; ``<desc>`` image, pixel box, ground size and position error;
  ``<extensions>`` (namespace :data:`NS`) the image, score, label and pixel box, so ``sspnet
  report`` reads the file back.
* KML ``<Placemark>``: the same point, styled by score band (:data:`BANDS`), the same text in its
  description, and the same values in ``<ExtendedData>``; with a review report, the path of the
  detection's crop in the report.

Detections without a map position (a photo without GPS, a box above the horizon) cannot be
waypoints: :func:`unplaced` counts and names them so the caller can say so.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from sspnet_cli import __version__
from sspnet_cli.atomic import atomic_write
from sspnet_cli.geo.positions import positions_of
from sspnet_cli.outputs.values import LONLAT_DECIMALS, PIXEL_DECIMALS, SCORE_DECIMALS, detection_arrays, label_name, size_properties
from sspnet_cli.types import ImageResult

GPX_NS = "http://www.topografix.com/GPX/1/1"
KML_NS = "http://www.opengis.net/kml/2.2"
#: our namespace for what GPX has no element for (image, pixel box)
NS = "https://sspnet.invalid/xmlns/detection/1"
#: score bands of the KML styles: (lowest score, name, KML colour aabbggrr)
BANDS = ((0.7, "high", "ff0000ff"), (0.5, "medium", "ff00a5ff"), (0.0, "low", "ff00ffff"))

PathLike = Union[str, Path]


class Waypoint:
    """One detection with a map position, ranked over the run."""

    __slots__ = ("rank", "image", "score", "label", "box", "lon", "lat", "error_m", "size_m", "plausible", "quality", "time", "crop")

    def __init__(self, **values: Any) -> None:
        for key in self.__slots__:
            setattr(self, key, values.get(key))

    def name(self) -> str:
        return f"#{self.rank} {self.score:.2f}"

    def description(self) -> str:
        x1, y1, x2, y2 = self.box
        parts = [f"{self.image}", f"pixel box [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]", f"score {self.score:.3f}"]
        if self.size_m is not None:
            parts.append(f"ground size {self.size_m[0]:.2f} x {self.size_m[1]:.2f} m")
        if self.plausible is False:
            parts.append("size implausible for a person")
        if self.error_m is not None:
            parts.append(f"position error about {self.error_m:.1f} m")
        if self.quality:
            parts.append(f"position quality: {self.quality}")
        if self.crop:
            parts.append(f"crop: {self.crop}")
        return "; ".join(parts)


def waypoints(results: Sequence[ImageResult], crop_of: Optional[Callable[[str, int], Optional[str]]] = None) -> list[Waypoint]:
    """Every located detection of ``results`` as a :class:`Waypoint`, best score first.
    ``crop_of(image, index)`` may give the path of its crop in a review report."""
    points = []
    for result in results:
        boxes, scores, labels = detection_arrays(result)
        if len(boxes) == 0:
            continue
        pos = positions_of(result)
        located = pos.located(len(boxes))
        time = _gpx_time((result.camera or {}).get("datetime"))
        for i in range(len(boxes)):
            if not located[i]:
                continue
            size = size_properties(pos, i)
            error = None
            if pos.error_m is not None and math.isfinite(float(pos.error_m[i])):
                error = float(pos.error_m[i])
            points.append(Waypoint(
                image=result.image, score=float(scores[i]), label=label_name(labels[i]), box=[float(v) for v in boxes[i]],
                lon=float(pos.centres[i][0]), lat=float(pos.centres[i][1]), error_m=error,  # type: ignore[index]
                size_m=size.get("ground_size_m"), plausible=size.get("size_plausible"), quality=pos.quality, time=time,
                crop=crop_of(result.image, i) if crop_of else None,
            ))
    points.sort(key=lambda p: -p.score)
    for rank, point in enumerate(points, start=1):
        point.rank = rank
    return points


def unplaced(results: Sequence[ImageResult]) -> tuple[int, list[str]]:
    """How many detections have no map position, and the images they are in."""
    count, images = 0, []
    for result in results:
        n = len(result.detections)
        if n == 0:
            continue
        missing = n - int(positions_of(result).located(n).sum())
        if missing:
            count += missing
            images.append(result.image)
    return count, images


def _gpx_time(text: Any) -> Optional[str]:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` as ``YYYY-MM-DDTHH:MM:SS`` (xsd:dateTime without a zone)."""
    if not isinstance(text, str) or len(text) < 19 or text[4] != ":" or text[7] != ":":
        return None
    stamp = f"{text[:4]}-{text[5:7]}-{text[8:10]}T{text[11:19]}"
    return stamp if stamp[:4].isdigit() and stamp[11:13].isdigit() else None


def _fmt(value: float, decimals: int) -> str:
    return f"{round(value, decimals):.{decimals}f}".rstrip("0").rstrip(".")


def _detection_attrs(p: Waypoint) -> dict[str, str]:
    return {
        "image": p.image, "score": _fmt(p.score, SCORE_DECIMALS), "label": p.label,
        "pixel_bbox": " ".join(_fmt(v, PIXEL_DECIMALS) for v in p.box),
    }


def write_gpx(path: PathLike, results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None) -> None:
    """Write the located detections of ``results`` as GPX 1.1 waypoints at ``path``, atomically."""
    ET.register_namespace("", GPX_NS)
    ET.register_namespace("sspnet", NS)
    root = ET.Element(f"{{{GPX_NS}}}gpx", {"version": "1.1", "creator": f"sspnet {__version__}"})
    md = ET.SubElement(root, f"{{{GPX_NS}}}metadata")
    ET.SubElement(md, f"{{{GPX_NS}}}name").text = "sspnet detections"
    ET.SubElement(md, f"{{{GPX_NS}}}desc").text = _meta_text(meta)
    for p in waypoints(results):
        wpt = ET.SubElement(root, f"{{{GPX_NS}}}wpt", {"lat": _fmt(p.lat, LONLAT_DECIMALS), "lon": _fmt(p.lon, LONLAT_DECIMALS)})
        if p.time:
            ET.SubElement(wpt, f"{{{GPX_NS}}}time").text = p.time
        ET.SubElement(wpt, f"{{{GPX_NS}}}name").text = p.name()
        ET.SubElement(wpt, f"{{{GPX_NS}}}desc").text = p.description()
        ET.SubElement(wpt, f"{{{GPX_NS}}}sym").text = "Flag, Red" if p.score >= BANDS[0][0] else "Flag, Blue"
        ET.SubElement(wpt, f"{{{GPX_NS}}}type").text = "person"
        ext = ET.SubElement(wpt, f"{{{GPX_NS}}}extensions")
        ET.SubElement(ext, f"{{{NS}}}detection", _detection_attrs(p))
    _write_xml(path, root)


def write_kml(path: PathLike, results: Sequence[ImageResult], meta: Optional[dict[str, Any]] = None,
              crop_of: Optional[Callable[[str, int], Optional[str]]] = None) -> None:
    """Write the located detections of ``results`` as KML 2.2 placemarks at ``path``, atomically,
    styled by score band."""
    ET.register_namespace("", KML_NS)
    root = ET.Element(f"{{{KML_NS}}}kml")
    doc = ET.SubElement(root, f"{{{KML_NS}}}Document")
    ET.SubElement(doc, f"{{{KML_NS}}}name").text = "sspnet detections"
    ET.SubElement(doc, f"{{{KML_NS}}}description").text = _meta_text(meta)
    for low, band, colour in BANDS:
        style = ET.SubElement(doc, f"{{{KML_NS}}}Style", {"id": f"score-{band}"})
        icon = ET.SubElement(style, f"{{{KML_NS}}}IconStyle")
        ET.SubElement(icon, f"{{{KML_NS}}}color").text = colour
        ET.SubElement(icon, f"{{{KML_NS}}}scale").text = "1.1" if band == "high" else "0.9"
    for p in waypoints(results, crop_of):
        band = next(b for low, b, _ in BANDS if p.score >= low)
        mark = ET.SubElement(doc, f"{{{KML_NS}}}Placemark")
        ET.SubElement(mark, f"{{{KML_NS}}}name").text = p.name()
        ET.SubElement(mark, f"{{{KML_NS}}}description").text = p.description()
        ET.SubElement(mark, f"{{{KML_NS}}}styleUrl").text = f"#score-{band}"
        data = ET.SubElement(mark, f"{{{KML_NS}}}ExtendedData")
        for key, value in _detection_attrs(p).items():
            item = ET.SubElement(data, f"{{{KML_NS}}}Data", {"name": key})
            ET.SubElement(item, f"{{{KML_NS}}}value").text = value
        point = ET.SubElement(mark, f"{{{KML_NS}}}Point")
        ET.SubElement(point, f"{{{KML_NS}}}coordinates").text = f"{_fmt(p.lon, LONLAT_DECIMALS)},{_fmt(p.lat, LONLAT_DECIMALS)}"
    _write_xml(path, root)


def _meta_text(meta: Optional[dict[str, Any]]) -> str:
    meta = meta or {}
    parts = [f"weights {meta['weights']}"] if meta.get("weights") else []
    options = meta.get("options") or {}
    if "score_thr" in options:
        parts.append(f"score >= {options['score_thr']}")
    return "people found by sspnet" + (f" ({', '.join(parts)})" if parts else "")


def _write_xml(path: PathLike, root: ET.Element) -> None:
    ET.indent(root, space="  ")
    with atomic_write(path, "wb") as f:
        ET.ElementTree(root).write(f, encoding="UTF-8", xml_declaration=True)
        f.write(b"\n")


def read_waypoints(path: PathLike) -> list[dict[str, Any]]:
    """The detections a GPX or KML file of ours holds: ``image``, ``score``, ``label``,
    ``pixel_bbox`` (list of 4), ``lon``, ``lat``, in file order. Raises ``ValueError`` for a file
    that is not one."""
    tree = ET.parse(path)
    root = tree.getroot()
    out = []
    if root.tag == f"{{{GPX_NS}}}gpx":
        for wpt in root.iter(f"{{{GPX_NS}}}wpt"):
            det = wpt.find(f"{{{GPX_NS}}}extensions/{{{NS}}}detection")
            values = dict(det.attrib) if det is not None else {}
            values.update(lon=float(wpt.get("lon")), lat=float(wpt.get("lat")))  # type: ignore[arg-type]
            out.append(values)
    elif root.tag == f"{{{KML_NS}}}kml":
        for mark in root.iter(f"{{{KML_NS}}}Placemark"):
            values = {d.get("name"): (d.findtext(f"{{{KML_NS}}}value") or "") for d in mark.iter(f"{{{KML_NS}}}Data")}
            coords = (mark.findtext(f".//{{{KML_NS}}}coordinates") or "").strip().split(",")
            values.update(lon=float(coords[0]), lat=float(coords[1]))
            out.append(values)
    else:
        raise ValueError("neither GPX 1.1 nor KML 2.2")
    for values in out:
        if "pixel_bbox" in values:
            values["pixel_bbox"] = [float(v) for v in str(values["pixel_bbox"]).split()]
        if "score" in values:
            values["score"] = float(values["score"])
    return out
