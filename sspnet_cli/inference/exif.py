"""Drone-photo metadata: EXIF GPS position and the DJI attitude tags from XMP.

Read with Pillow without decoding pixels. Everything here is best effort: a photo with broken
or missing tags simply gets no camera dictionary (or fewer keys); it is never an input error.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Optional

from PIL import Image

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_TAG_MAKE, _TAG_MODEL, _TAG_ORIENTATION, _TAG_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_TAG_DATETIME_ORIGINAL = 0x9003
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6

# DJI XMP attributes (drone-dji:Name="+61.10") -> camera dictionary keys
_DJI_XMP = {
    "RelativeAltitude": "relative_altitude",
    "GimbalYawDegree": "gimbal_yaw",
    "GimbalPitchDegree": "gimbal_pitch",
    "GimbalRollDegree": "gimbal_roll",
    "FlightYawDegree": "flight_yaw",
}
_XMP_ATTR = re.compile(rb'drone-dji:(\w+)="([^"]*)"')


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


def read_exif(path: str | Path) -> tuple[Optional[dict[str, Any]], int]:
    """Camera metadata of a photo and its EXIF orientation tag (1 when absent).

    The camera dictionary is ``None`` unless the file has a usable GPS latitude and longitude.
    It holds ``lon``, ``lat`` (WGS84 degrees), ``altitude`` (GPS altitude in metres above sea
    level, ``None`` when absent), and when present ``relative_altitude`` (metres above the
    take-off point), ``gimbal_yaw``/``gimbal_pitch``/``gimbal_roll``/``flight_yaw`` (degrees,
    DJI XMP), ``make``, ``model`` and ``datetime`` (EXIF, camera local time, as written).
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
                xmp = im.info.get("xmp") or b""
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

    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    found = {name.decode("ascii", "replace"): raw for name, raw in _XMP_ATTR.findall(xmp)}
    for name, key in _DJI_XMP.items():  # fixed key order, whatever the XMP order
        value = _float_or_none(found[name].decode("ascii", "replace")) if name in found else None
        if value is not None:
            camera[key] = value
    for key, value in (
        ("make", exif.get(_TAG_MAKE)),
        ("model", exif.get(_TAG_MODEL)),
        ("datetime", sub.get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME)),
    ):
        text = _text(value)
        if text is not None:
            camera[key] = text
    return camera, orientation
