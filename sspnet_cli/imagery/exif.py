"""Drone-photo metadata: EXIF GPS position, lens tags, and the DJI attitude and calibration from XMP.

EXIF is read with Pillow (already needed for images; it parses the IFDs, GPS rationals included,
without decoding pixels). XMP is plain XML: Pillow hands over the raw packet and the standard
library's ElementTree reads it, namespace-aware, so DJI tags are found whatever prefix the file
binds to DJI's namespace and whether they are written as attributes or as elements. ElementTree
never fetches external entities, and the expat it runs on (2.4.1 and later) caps entity
expansion, so a hostile packet cannot blow up; no extra dependency (exifread, defusedxml) does
more for these few tags.

Everything here is best effort: a photo with broken or missing tags simply gets no camera
dictionary (or fewer keys); it is never an input error.
"""
from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

from PIL import Image

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_TAG_MAKE, _TAG_MODEL, _TAG_ORIENTATION, _TAG_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_XMP = 0x02BC  # TIFF XMLPacket, where Pillow did not already put it in info["xmp"]
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6

# EXIF sub-IFD lens tags -> camera dictionary keys (numbers)
_TAG_FOCAL_LENGTH, _TAG_FOCAL_35MM = 0x920A, 0xA405
_TAG_PIXEL_X, _TAG_PIXEL_Y = 0xA002, 0xA003
_TAG_FOCAL_PLANE_X_RES, _TAG_FOCAL_PLANE_UNIT = 0xA20E, 0xA210
# FocalPlaneResolutionUnit -> millimetres per unit (2 inch, 3 cm; 4 mm and 5 um occur in the wild)
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}

DJI_XMP_NAMESPACE = "http://www.dji.com/drone-dji/1.0/"
# DJI XMP properties (drone-dji:Name="+61.10") -> camera dictionary keys
_DJI_XMP = {
    "RelativeAltitude": "relative_altitude",
    "AbsoluteAltitude": "absolute_altitude",
    "GimbalYawDegree": "gimbal_yaw",
    "GimbalPitchDegree": "gimbal_pitch",
    "GimbalRollDegree": "gimbal_roll",
    "FlightYawDegree": "flight_yaw",
    "CalibratedFocalLength": "calibrated_focal_length",
    "CalibratedOpticalCenterX": "calibrated_cx",
    "CalibratedOpticalCenterY": "calibrated_cy",
}


def _dms_to_degrees(value: Any, ref: Any, negative_ref: str) -> Optional[float]:
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60.0 + s / 3600.0
    if not math.isfinite(deg):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().upper() == negative_ref:
        deg = -deg
    return deg


def _float_or_none(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return out if math.isfinite(out) else None


def _text(value: Any) -> Optional[str]:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.strip("\x00 ").strip()
        return value or None
    return None


def dji_xmp(xmp: bytes | str) -> dict[str, str]:
    """The properties in DJI's XMP namespace as ``{local name: text}`` (attributes and simple
    elements alike), or ``{}`` when the packet is not well-formed XML or has none."""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    # writers pad the packet and some end it with NULs, which XML does not allow
    xmp = xmp.strip(b"\x00 \t\r\n")
    if not xmp:
        return {}
    try:
        root = ET.fromstring(xmp)
    except (ET.ParseError, ValueError):
        return {}
    prefix = "{" + DJI_XMP_NAMESPACE + "}"
    found: dict[str, str] = {}
    for element in root.iter():
        for name, value in element.attrib.items():
            if name.startswith(prefix):
                found.setdefault(name[len(prefix):], value)
        if isinstance(element.tag, str) and element.tag.startswith(prefix) and element.text and element.text.strip():
            found.setdefault(element.tag[len(prefix):], element.text.strip())
    return found


def _lens(sub: Any) -> dict[str, float]:
    """Lens tags of the EXIF sub-IFD that the camera model can use (positive numbers only)."""
    out: dict[str, float] = {}
    for key, tag in (("focal_length", _TAG_FOCAL_LENGTH), ("focal_length_35mm", _TAG_FOCAL_35MM),
                     ("exif_width", _TAG_PIXEL_X), ("exif_height", _TAG_PIXEL_Y)):
        value = _float_or_none(sub.get(tag))
        if value is not None and value > 0:
            out[key] = value
    resolution = _float_or_none(sub.get(_TAG_FOCAL_PLANE_X_RES))
    unit_tag = sub.get(_TAG_FOCAL_PLANE_UNIT, 2)  # the standard's default unit is the inch
    unit = _UNIT_MM.get(unit_tag) if isinstance(unit_tag, int) else None
    if resolution is not None and resolution > 0 and unit is not None:
        out["focal_plane_px_per_mm"] = resolution / unit
    return out


def read_exif(path: str | Path) -> tuple[Optional[dict[str, Any]], int]:
    """Camera metadata of a photo and its EXIF orientation tag (1 when absent).

    The camera dictionary is ``None`` unless the file has a usable GPS latitude and longitude.
    It holds ``lon``, ``lat`` (WGS84 degrees), ``altitude`` (GPS altitude in metres above sea
    level, ``None`` when absent), and when present:

    * from DJI XMP: ``relative_altitude`` (metres above the take-off point),
      ``absolute_altitude`` (metres), ``gimbal_yaw``/``gimbal_pitch``/``gimbal_roll``/
      ``flight_yaw`` (degrees), ``calibrated_focal_length``, ``calibrated_cx``,
      ``calibrated_cy`` (pixels of the camera's full frame);
    * from EXIF: ``focal_length`` (mm), ``focal_length_35mm`` (mm, 35 mm equivalent),
      ``focal_plane_px_per_mm``, ``exif_width``/``exif_height`` (the pixel size the EXIF
      describes), ``make``, ``model`` and ``datetime`` (camera local time, as written).
    """
    try:
        # only headers are parsed: silence Pillow's decompression-bomb warning for big rasters
        # (beyond twice its limit Pillow refuses to open the file, and there is no camera)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                exif = im.getexif()
                gps = exif.get_ifd(_GPS_IFD)
                sub = exif.get_ifd(_EXIF_IFD)
                xmp = im.info.get("xmp") or exif.get(_TAG_XMP) or b""
    except Exception:
        return None, 1
    orientation = exif.get(_TAG_ORIENTATION, 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1

    lat = _dms_to_degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S")
    lon = _dms_to_degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, orientation
    altitude = _float_or_none(gps.get(_GPS_ALT))
    if altitude is not None and gps.get(_GPS_ALT_REF) in (1, b"\x01"):
        altitude = -altitude
    camera: dict[str, Any] = {"lon": lon, "lat": lat, "altitude": altitude}

    found = dji_xmp(xmp) if isinstance(xmp, (bytes, str)) else {}
    for name, key in _DJI_XMP.items():  # fixed key order, whatever the XMP order
        value = _float_or_none(found.get(name))
        if value is not None:
            camera[key] = value
    camera.update(_lens(sub))
    for key, value in (
        ("make", exif.get(_TAG_MAKE)),
        ("model", exif.get(_TAG_MODEL)),
        ("datetime", sub.get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME)),
    ):
        text = _text(value)
        if text is not None:
            camera[key] = text
    return camera, orientation
