"""The searched-area coverage file (``detect --coverage``): GeoJSON or KML of each frame's ground
footprint with its ground sample distance, a person's size in its pixels and the model's
probability of detection there, and one polygon per POD band with its area in hectares."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Union

from sspnet_cli.atomic import atomic_write
from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.coverage import PERSON_M, Coverage
from sspnet_cli.outputs.waypoints import KML_NS

COVERAGE_SUFFIXES = (".geojson", ".kml")
#: KML colours (aabbggrr) of the POD bands, half transparent
_BAND_COLOURS = {"high": "7f00c000", "medium": "7f00c0ff", "low": "7f0000ff"}


def check_coverage_path(path: Union[str, Path]) -> Path:
    path = Path(path)
    if path.suffix.lower() not in COVERAGE_SUFFIXES:
        raise SSPNetError(f"{path}: --coverage writes .geojson or .kml")
    return path


def _round_ring(ring: Any) -> list[list[float]]:
    return [[round(float(x), 8), round(float(y), 8)] for x, y in ring]


def write_coverage(path: Union[str, Path], cov: Coverage) -> None:
    """Write ``cov`` as GeoJSON or KML (by suffix), atomically."""
    path = check_coverage_path(path)
    if path.suffix.lower() == ".kml":
        _write_kml(path, cov)
        return
    features = []
    for f in cov.frames:
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_round_ring(f.ring)]},
                         "properties": {"kind": "frame", "image": f.image, "gsd_m": round(f.gsd_m, 4),
                                        "person_px": round(f.person_px, 2), "pod": round(f.pod, 4)}})
    for band in cov.bands:
        features.append({"type": "Feature", "geometry": _round_geometry(band["geometry"]),
                         "properties": {"kind": "pod_band", "band": band["name"], "min_pod": band["min_pod"],
                                        "max_pod": band["max_pod"], "area_ha": round(band["area_ha"], 4)}})
    doc = {
        "type": "FeatureCollection",
        "sspnet:coverage": {
            "person_m": list(PERSON_M), "total_area_ha": round(cov.total_area_ha, 4),
            "overlaps": "independent looks: 1 - prod(1 - pod)", "frames_without_footprint": cov.without_footprint,
        },
        "features": features,
    }
    with atomic_write(path) as fh:
        json.dump(doc, fh, ensure_ascii=False)
        fh.write("\n")


def _round_geometry(geometry: dict[str, Any]) -> dict[str, Any]:
    def walk(c: Any) -> Any:
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            return [round(float(v), 8) for v in c]
        return [walk(v) for v in c]

    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}


def _write_kml(path: Path, cov: Coverage) -> None:
    k = f"{{{KML_NS}}}"
    ET.register_namespace("", KML_NS)
    root = ET.Element(f"{k}kml")
    doc = ET.SubElement(root, f"{k}Document")
    ET.SubElement(doc, f"{k}name").text = "sspnet searched area"
    for name, colour in _BAND_COLOURS.items():
        style = ET.SubElement(doc, f"{k}Style", {"id": f"pod-{name}"})
        ET.SubElement(ET.SubElement(style, f"{k}PolyStyle"), f"{k}color").text = colour
    for band in cov.bands:
        mark = ET.SubElement(doc, f"{k}Placemark")
        ET.SubElement(mark, f"{k}name").text = f"POD {band['name']} ({band['min_pod']:.1f}-{band['max_pod']:.1f}), {band['area_ha']:.2f} ha"
        ET.SubElement(mark, f"{k}styleUrl").text = f"#pod-{band['name']}"
        multi = ET.SubElement(mark, f"{k}MultiGeometry")
        geom = band["geometry"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        for rings in polygons:
            poly = ET.SubElement(multi, f"{k}Polygon")
            for j, ring in enumerate(rings):
                boundary = ET.SubElement(poly, f"{k}outerBoundaryIs" if j == 0 else f"{k}innerBoundaryIs")
                coords = ET.SubElement(ET.SubElement(boundary, f"{k}LinearRing"), f"{k}coordinates")
                coords.text = " ".join(f"{x:.8f},{y:.8f}" for x, y in ring)
    for f in cov.frames:
        mark = ET.SubElement(doc, f"{k}Placemark")
        ET.SubElement(mark, f"{k}name").text = Path(f.image).name
        ET.SubElement(mark, f"{k}description").text = f"GSD {f.gsd_m * 100:.1f} cm; a person is {f.person_px:.1f} px; POD {f.pod:.2f}"
        ring = ET.SubElement(ET.SubElement(ET.SubElement(ET.SubElement(mark, f"{k}Polygon"), f"{k}outerBoundaryIs"), f"{k}LinearRing"), f"{k}coordinates")
        ring.text = " ".join(f"{x:.8f},{y:.8f}" for x, y in f.ring)
    ET.indent(root, space="  ")
    with atomic_write(path, "wb") as fh:
        ET.ElementTree(root).write(fh, encoding="UTF-8", xml_declaration=True)
        fh.write(b"\n")
