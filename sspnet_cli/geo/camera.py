"""Map positions for detections in plain drone photos, from the camera's own metadata.

The model (``docs/camera-model.md`` explains it for users):

* **Pinhole camera** at the EXIF GPS position, square pixels, no lens distortion. Focal length
  in pixels and principal point from DJI's ``CalibratedFocalLength`` and
  ``CalibratedOpticalCenterX/Y`` when present, else from EXIF ``FocalLengthIn35mmFilm``
  (35 mm equivalent, on the diagonal) or ``FocalLength`` x ``FocalPlaneXResolution``, with the
  principal point at the image centre. Those values describe the camera's full frame; a file
  that is a uniform scaling of it (same aspect ratio) gets them scaled, one that is a crop of
  it keeps the focal length in pixels and gets the principal point at its own centre, since
  where the crop was taken is not recorded (see :func:`intrinsics_of`).
* **Attitude** from the gimbal: yaw in degrees clockwise from true north (the top of a nadir
  image faces that heading), pitch (0 = level, -90 = straight down), roll (positive turns the
  image's right side down). Camera axes x right, y down, z forward are turned to east, north,
  up by :func:`rotation`.
* **Ground**: flat, ``RelativeAltitude`` metres below the camera by default; or flat at a given
  elevation (same vertical datum as the GPS altitude); or a DEM, met iteratively
  (:func:`sspnet_cli.geo.dem.intersect_surface`). No ray meets the ground beyond the horizon of
  a spherical Earth.
* **Metres to lon/lat** through an azimuthal equidistant projection centred on the camera
  (pyproj), exact in distance and azimuth from the camera.

Each box's four pixel corners are cast to the ground (its polygon) and so is its centre (its
point). The error estimate of each detection is the root-sum-square of how far its centre's
ground point moves when the attitude turns by 1 degree about each of three axes (the vertical,
the horizontal axis across the view, the horizontal axis along it) and when the camera's height
changes by 2 m, each term the larger of the two signs.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
from pyproj import CRS, Transformer

from sspnet_cli.errors import SSPNetError
from sspnet_cli.geo.dem import ABOVE_HORIZON, Dem, horizon_distance, intersect_surface
from sspnet_cli.geo.positions import Positions
from sspnet_cli.geo.transform import box_rings, make_ccw
from sspnet_cli.types import ImageResult

#: the error budget: attitude error (degrees, about each axis) and height error (metres)
ATTITUDE_ERROR_DEG = 1.0
ALTITUDE_ERROR_M = 2.0
#: higher than this above the ground, the metadata is not a drone's
MAX_HEIGHT_M = 10_000.0
DIAGONAL_35MM = math.hypot(36.0, 24.0)
#: plausible horizontal field of view of the full frame, degrees
FOV_RANGE_DEG = (1.0, 170.0)
#: relative size difference still taken as "the same size" / "the same aspect ratio"
SIZE_TOLERANCE = 0.02

CROP_NOTE = (
    "cropped photo: the crop's place in the camera's frame is not recorded, so the principal "
    "point is assumed at the centre of the crop"
)


class CameraModelError(Exception):
    """The metadata cannot place this photo on the map; ``reason`` says why (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Intrinsics:
    """Focal length and principal point in pixels of the file as it is (corner convention, so
    the centre of a W x H image is (W/2, H/2)), where they came from, and a caveat if any."""

    focal_px: float
    cx: float
    cy: float
    source: str  # "calibrated" | "35 mm equivalent" | "focal plane resolution"
    note: Optional[str] = None


def _number(camera: Mapping[str, Any], key: str) -> Optional[float]:
    value = camera.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= SIZE_TOLERANCE * max(abs(a), abs(b))


def _fit(focal: float, cx: float, cy: float, full_w: float, full_h: float, width: int, height: int, source: str) -> Intrinsics:
    """Intrinsics of a ``width`` x ``height`` file from those of the full frame they describe:
    as they are for the full frame, scaled for a uniform scaling, the focal length kept and
    the principal point centred for a crop."""
    fov = math.degrees(2 * math.atan2(full_w / 2, focal))
    if not FOV_RANGE_DEG[0] <= fov <= FOV_RANGE_DEG[1]:
        raise CameraModelError(f"implausible {source} focal length ({focal:.4g} px for a {full_w:.0f} px wide frame: {fov:.1f} deg field of view)")
    if _close(width, full_w) and _close(height, full_h):
        return Intrinsics(focal, cx, cy, source)
    if _close(width / height, full_w / full_h):
        s = width / full_w
        return Intrinsics(focal * s, cx * s, cy * s, source)
    if _close(width / height, full_h / full_w):
        raise CameraModelError(f"the image ({width}x{height}) looks turned by 90 degrees from the camera's frame ({full_w:.0f}x{full_h:.0f})")
    if width <= full_w * (1 + SIZE_TOLERANCE) and height <= full_h * (1 + SIZE_TOLERANCE):
        return Intrinsics(focal, width / 2, height / 2, source, CROP_NOTE)
    raise CameraModelError(f"the image ({width}x{height}) is larger than the camera's frame ({full_w:.0f}x{full_h:.0f}) its {source} focal length describes")


def intrinsics_of(camera: Mapping[str, Any], width: int, height: int) -> Intrinsics:
    """Focal length (pixels) and principal point of a ``width`` x ``height`` photo.

    DJI's calibrated values come first; they describe the full frame, whose size is taken as
    twice the calibrated optical centre. Without them (or when they give an implausible field
    of view) EXIF's 35 mm equivalent focal length (on the diagonal) or its focal length and
    focal-plane resolution serve, for a full frame of EXIF's pixel dimensions (else the file's).
    A file of the full frame's size uses the values as they are; one of its aspect ratio is
    taken as a scaled copy; any other smaller one as a crop (focal length kept, principal point
    at the file's centre, with :data:`CROP_NOTE`). Raises :class:`CameraModelError`.
    """
    if width < 1 or height < 1:
        raise CameraModelError("the image has no pixels")
    focal, cx, cy = (_number(camera, k) for k in ("calibrated_focal_length", "calibrated_cx", "calibrated_cy"))
    calibrated_problem = None
    if focal is not None and cx is not None and cy is not None and focal > 0 and cx > 0 and cy > 0:
        try:
            return _fit(focal, cx, cy, 2 * cx, 2 * cy, width, height, "calibrated")
        except CameraModelError as exc:
            calibrated_problem = exc.reason
    full_w, full_h = _number(camera, "exif_width"), _number(camera, "exif_height")
    if full_w is None or full_h is None or full_w < 1 or full_h < 1:
        full_w, full_h = float(width), float(height)
    f35 = _number(camera, "focal_length_35mm")
    mm, px_per_mm = _number(camera, "focal_length"), _number(camera, "focal_plane_px_per_mm")
    if f35 is not None and f35 > 0:
        focal, source = f35 / DIAGONAL_35MM * math.hypot(full_w, full_h), "35 mm equivalent"
    elif mm is not None and px_per_mm is not None and mm > 0 and px_per_mm > 0:
        focal, source = mm * px_per_mm, "focal plane resolution"
    else:
        raise CameraModelError(calibrated_problem or "no usable focal length in the metadata")
    return _fit(focal, full_w / 2, full_h / 2, full_w, full_h, width, height, source)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The 3 x 3 matrix turning camera axes (x right, y down, z forward along the optical axis)
    into east, north, up, for gimbal ``yaw`` (degrees clockwise from north), ``pitch``
    (degrees, -90 straight down) and ``roll`` (degrees, positive turns the right side down)."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    # camera -> level, looking north: x east, y down, z north
    base = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    roll_m = np.array([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]])
    pitch_m = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)], [0.0, math.sin(p), math.cos(p)]])
    yaw_m = np.array([[math.cos(y), math.sin(y), 0.0], [-math.sin(y), math.cos(y), 0.0], [0.0, 0.0, 1.0]])
    return yaw_m @ pitch_m @ base @ roll_m


def axis_rotation(axis: Sequence[float], degrees: float) -> np.ndarray:
    """The 3 x 3 matrix turning by ``degrees`` about the unit vector ``axis`` (right-handed)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    t = math.radians(degrees)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)


@dataclass(frozen=True)
class CameraModel:
    """A photo's camera placed in a local east/north/up frame centred under it.

    ``camera_z`` is the camera's height in the ground's vertical frame: above flat ground at
    ``ground_z``, or its altitude over a ``dem``. ``ground_under`` is the ground's height
    straight below it, ``notes`` caveats that apply to every position. ``frame`` turns metres
    east/north of the camera into lon/lat (made from ``lon``, ``lat`` when not given).
    """

    lon: float
    lat: float
    intrinsics: Intrinsics
    yaw: float
    pitch: float
    roll: float
    camera_z: float
    ground_under: float
    ground_z: Optional[float] = None
    dem: Optional[Dem] = field(default=None, compare=False, repr=False)
    notes: tuple[str, ...] = ()
    frame: Optional[Transformer] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.frame is None:
            object.__setattr__(self, "frame", _local_frame(self.lon, self.lat))

    @property
    def height_above_ground(self) -> float:
        """Metres from the camera down to the ground straight below it."""
        return self.camera_z - self.ground_under

    @property
    def rotation(self) -> np.ndarray:
        """Camera axes -> east, north, up (see :func:`rotation`)."""
        return rotation(self.yaw, self.pitch, self.roll)

    def directions(self, cols: np.ndarray, rows: np.ndarray, rotation_matrix: Optional[np.ndarray] = None) -> np.ndarray:
        """(N, 3) east/north/up directions of the rays through pixel positions ``cols``,
        ``rows`` (corner convention), with this attitude or ``rotation_matrix``."""
        k = self.intrinsics
        cols = np.asarray(cols, dtype=np.float64).reshape(-1)
        rows = np.asarray(rows, dtype=np.float64).reshape(-1)
        cam = np.stack([(cols - k.cx) / k.focal_px, (rows - k.cy) / k.focal_px, np.ones_like(cols)], axis=1)
        r = self.rotation if rotation_matrix is None else rotation_matrix
        return cam @ r.T

    def ground_xy(
        self, cols: np.ndarray, rows: np.ndarray, rotation_matrix: Optional[np.ndarray] = None, camera_z: Optional[float] = None
    ) -> tuple[np.ndarray, list[Optional[str]]]:
        """Where the rays through pixel positions meet the ground, in metres east/north of the
        camera: ``(xy (N, 2), why)``, NaN and a reason per ray where they do not."""
        d = self.directions(cols, rows, rotation_matrix)
        z = self.camera_z if camera_z is None else camera_z
        max_range = horizon_distance(z - self.ground_under)
        if self.dem is None:
            return _flat_hits(d, z - self.ground_z, max_range)  # type: ignore[operator]
        dem = self.dem

        def height_at(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return dem.heights(*self.to_lonlat(np.stack([x, y], axis=1)).T)

        return intersect_surface(height_at, z, d, self.ground_under, max_range)

    def to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) WGS84 lon/lat of points (N, 2) metres east/north of the camera."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        lon, lat = self.frame.transform(xy[:, 0], xy[:, 1])  # type: ignore[union-attr]
        return np.stack([np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)], axis=1).reshape(-1, 2)


def _flat_hits(d: np.ndarray, height: float, max_range: float) -> tuple[np.ndarray, list[Optional[str]]]:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[:, 2] < 0, height / -d[:, 2], np.nan)
    xy = t[:, None] * d[:, :2]
    ok = np.isfinite(xy).all(axis=1) & (np.hypot(xy[:, 0], xy[:, 1]) <= max_range)
    xy[~ok] = np.nan
    return xy, [None if k else ABOVE_HORIZON for k in ok]


def _attitude(camera: Mapping[str, Any]) -> tuple[float, float, float, list[str]]:
    notes: list[str] = []
    pitch = _number(camera, "gimbal_pitch")
    if pitch is None:
        raise CameraModelError("no gimbal pitch in the metadata: which way the camera looked is unknown")
    if not -180 <= pitch <= 180:
        raise CameraModelError(f"gimbal pitch {pitch:g} is not an angle in [-180, 180] degrees")
    yaw = _number(camera, "gimbal_yaw")
    if yaw is None:
        yaw = _number(camera, "flight_yaw")
        if yaw is None:
            raise CameraModelError("no gimbal yaw in the metadata: which way the photo faces is unknown")
        notes.append("no gimbal yaw: the aircraft's heading is used")
    if not -360 <= yaw <= 360:
        raise CameraModelError(f"gimbal yaw {yaw:g} is not an angle in [-360, 360] degrees")
    roll = _number(camera, "gimbal_roll")
    if roll is None:
        roll = 0.0
        notes.append("no gimbal roll: level assumed")
    if not -180 <= roll <= 180:
        raise CameraModelError(f"gimbal roll {roll:g} is not an angle in [-180, 180] degrees")
    return yaw % 360.0, pitch, roll, notes


def _local_frame(lon: float, lat: float) -> Transformer:
    """Metres east/north of (lon, lat) -> lon/lat: an azimuthal equidistant projection centred
    there keeps every distance and azimuth from the camera exact."""
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={lat!r} +lon_0={lon!r} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")
    return Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)


def camera_model(
    camera: Mapping[str, Any],
    width: int,
    height: int,
    ground_elevation: Optional[float] = None,
    dem: Optional[Dem] = None,
) -> CameraModel:
    """The camera model of a ``width`` x ``height`` photo from its metadata (the dictionary of
    :func:`sspnet_cli.imagery.exif.read_exif`).

    The ground is flat at ``RelativeAltitude`` below the camera, or flat at ``ground_elevation``
    (metres, the GPS altitude's datum), or the ``dem``. Raises :class:`CameraModelError` when
    the metadata cannot place the photo (no GPS, no attitude, no focal length, nonsense values,
    a frame that sees no ground).
    """
    if ground_elevation is not None and dem is not None:
        raise SSPNetError("give a ground elevation or a DEM, not both")
    lon, lat = _number(camera, "lon"), _number(camera, "lat")
    if lon is None or lat is None or not (-180 <= lon <= 180 and -90 < lat < 90):
        raise CameraModelError("no usable GPS position in the metadata")
    intrinsics = intrinsics_of(camera, width, height)
    yaw, pitch, roll, notes = _attitude(camera)
    if intrinsics.note:
        notes.insert(0, intrinsics.note)
    altitude = _number(camera, "altitude")
    if altitude is None:
        altitude = _number(camera, "absolute_altitude")
    ground_z: Optional[float]
    if dem is not None or ground_elevation is not None:
        if altitude is None:
            raise CameraModelError("no GPS altitude in the metadata, which a ground elevation or DEM needs")
        camera_z = altitude
        if dem is not None:
            ground_z = None
            under = float(dem.heights(np.array([lon]), np.array([lat]))[0])
            if not math.isfinite(under):
                raise CameraModelError("the camera is not over the DEM (or over its nodata)")
            where = f"the DEM under it ({under:.1f} m): are both in the same vertical datum?"
        else:
            if not math.isfinite(ground_elevation):  # type: ignore[arg-type]
                raise SSPNetError(f"ground elevation must be a finite number of metres, got {ground_elevation}")
            ground_z = under = float(ground_elevation)  # type: ignore[arg-type]
            where = f"the ground elevation given ({under:.1f} m)"
        if camera_z - under <= 0:
            raise CameraModelError(f"the camera's GPS altitude ({camera_z:.1f} m) is not above {where}")
    else:
        relative = _number(camera, "relative_altitude")
        if relative is None:
            raise CameraModelError("no height above the ground in the metadata (DJI RelativeAltitude); give a ground elevation or a DEM")
        if relative <= 0:
            raise CameraModelError(f"relative altitude {relative:g} m: not above the take-off point; give a ground elevation or a DEM")
        camera_z, ground_z, under = relative, 0.0, 0.0
    if camera_z - under > MAX_HEIGHT_M:
        raise CameraModelError(f"{camera_z - under:.0f} m above the ground is not a drone's height")
    model = CameraModel(lon, lat, intrinsics, yaw, pitch, roll, camera_z, under, ground_z, dem, tuple(notes))
    _check_sees_ground(model, width, height)
    return model


def _check_sees_ground(model: CameraModel, width: int, height: int) -> None:
    cols = np.array([0.0, width / 2, width, 0.0, width / 2, width, 0.0, width / 2, width])
    rows = np.array([0.0, 0.0, 0.0, height / 2, height / 2, height / 2, height, height, height])
    xy, why = model.ground_xy(cols, rows)
    if not np.isfinite(xy).all(axis=1).any():
        sight = next(w for w in why if w is not None)
        raise CameraModelError(f"no part of the frame meets the ground ({sight}; gimbal pitch {model.pitch:+.1f} deg)")


def position_errors(
    model: CameraModel,
    cols: np.ndarray,
    rows: np.ndarray,
    attitude_deg: float = ATTITUDE_ERROR_DEG,
    altitude_m: float = ALTITUDE_ERROR_M,
) -> np.ndarray:
    """(N,) horizontal error (metres) of the ground points of pixel positions ``cols``, ``rows``:
    the root-sum-square of their displacements when the camera turns by ``attitude_deg`` about
    the vertical, about the horizontal axis across its view and about the horizontal axis along
    it, and when its height changes by ``altitude_m`` (each term the larger of + and -). Unlike
    the gimbal's Euler angles, these three axes stay independent at nadir, where gimbal yaw and
    roll turn the image the same way. Infinite where a perturbed ray misses the ground."""
    base, _ = model.ground_xy(cols, rows)
    heading = math.radians(model.yaw)
    axes = ((0.0, 0.0, 1.0), (math.cos(heading), -math.sin(heading), 0.0), (math.sin(heading), math.cos(heading), 0.0))
    r = model.rotation
    variants: list[list[tuple[Optional[np.ndarray], Optional[float]]]] = [
        [(axis_rotation(axis, sign * attitude_deg) @ r, None) for sign in (1.0, -1.0)] for axis in axes
    ]
    variants.append([(None, model.camera_z + sign * altitude_m) for sign in (1.0, -1.0)])
    total = np.zeros(len(base))
    for pair in variants:
        worst = np.zeros(len(base))
        for rot, z in pair:
            xy, _ = model.ground_xy(cols, rows, rot, z)
            moved = np.hypot(*(xy - base).T)
            worst = np.maximum(worst, np.where(np.isfinite(moved), moved, np.inf))
        total += worst**2
    return np.sqrt(total)


def project_boxes(model: CameraModel, boxes: np.ndarray) -> Positions:
    """Ground positions of ``(N, 4)`` pixel boxes: each box's four corners cast to the ground
    (its ring) and its centre (its point and error estimate). A box with any of them off the
    ground (above the horizon, off the DEM) gets NaN rows and a reason."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(b)
    corners = box_rings(b)[:, :4].reshape(-1, 2)
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
    points = np.concatenate([corners, centres])
    xy, why = model.ground_xy(points[:, 0], points[:, 1])
    hit = np.isfinite(xy).all(axis=1)
    ok = hit[: 4 * n].reshape(n, 4).all(axis=1) & hit[4 * n :]
    reasons: list[Optional[str]] = [None] * n
    for i in np.flatnonzero(~ok):
        own = why[4 * i : 4 * i + 4] + [why[4 * n + i]]
        reasons[i] = "part of the box is " + next(w for w in own if w is not None)
    lonlat = np.full((5 * n, 2), np.nan)
    if hit.any():
        lonlat[hit] = model.to_lonlat(xy[hit])
    # ground size along the box's width and height, from the corners in metres east/north:
    # box_rings' corner order is (x1, y1), (x1, y2), (x2, y2), (x2, y1)
    c = np.full((4 * n, 2), np.nan)
    c[hit[: 4 * n]] = xy[: 4 * n][hit[: 4 * n]]
    c = c.reshape(n, 4, 2)
    edge = lambda a, b: np.hypot(*(c[:, a] - c[:, b]).T)  # noqa: E731
    sizes = np.stack([(edge(1, 2) + edge(0, 3)) / 2, (edge(0, 1) + edge(3, 2)) / 2], axis=1)
    rings = lonlat[: 4 * n].reshape(n, 4, 2)
    rings = make_ccw(np.concatenate([rings, rings[:, :1]], axis=1))
    centre_lonlat = lonlat[4 * n :]
    errors = np.full(n, np.nan)
    if ok.any():
        errors[ok] = position_errors(model, centres[ok, 0], centres[ok, 1])
    rings[~ok] = np.nan
    centre_lonlat[~ok] = np.nan
    sizes[~ok] = np.nan
    note = "; ".join(model.notes) or None
    return Positions("camera", rings, centre_lonlat, errors, reasons=reasons, note=note, sizes_m=sizes)


def frame_footprint(model: CameraModel, width: int, height: int) -> np.ndarray:
    """Closed counter-clockwise (5, 2) lon/lat ring of the photo's four corners on the ground
    (NaN rows for corners that do not meet it)."""
    ring = box_rings(np.array([[0.0, 0.0, float(width), float(height)]]))[0]
    xy, _ = model.ground_xy(ring[:, 0], ring[:, 1])
    out = np.full((5, 2), np.nan)
    hit = np.isfinite(xy).all(axis=1)
    if hit.any():
        out[hit] = model.to_lonlat(xy[hit])
    return make_ccw(out[None])[0]


def open_ground(ground_elevation: Optional[float] = None, dem: Union[str, Path, None] = None) -> Optional[Dem]:
    """Check the ground options before any work (``--ground-elevation``, ``--dem``) and open the
    DEM: raises :class:`SSPNetError` (one line) for both at once, an elevation that is not a
    finite number, or a DEM that cannot serve. Returns the open :class:`Dem` (the caller closes
    it) or None."""
    if ground_elevation is not None and dem is not None:
        raise SSPNetError("give --ground-elevation or --dem, not both")
    if ground_elevation is not None and not math.isfinite(ground_elevation):
        raise SSPNetError(f"--ground-elevation must be a finite number of metres, got {ground_elevation}")
    return None if dem is None else Dem(dem)


#: a photo's positions are flagged "oblique" when its camera looked further than this from
#: straight down (degrees): positions degrade fast with the view angle (ADIAT limits GPS
#: positions to 5 degrees off nadir; we keep them, flagged, with their larger error)
MAX_OFF_NADIR = 30.0


def off_nadir(camera: dict[str, Any]) -> Optional[float]:
    """Degrees between the camera's view and straight down (gimbal pitch -90 is nadir), or None."""
    pitch = camera.get("gimbal_pitch")
    if not isinstance(pitch, (int, float)) or not math.isfinite(pitch):
        return None
    return abs(float(pitch) + 90.0)


def apply_camera_model(
    result: ImageResult, ground_elevation: Optional[float] = None, dem: Optional[Dem] = None, max_off_nadir: float = MAX_OFF_NADIR
) -> ImageResult:
    """``result`` with its detections' ground positions in ``ground``, which
    :func:`sspnet_cli.geo.positions.positions_of` and the writers read.

    Georeferenced rasters come back unchanged (their own georeferencing wins). Photos the
    metadata cannot place get :class:`Positions` ``"pixel"`` with the reason; the others get
    ``"camera"`` positions, and their ``camera`` dictionary gains ``focal_length_px`` and
    ``height_above_ground`` (the model's values). ``ground_elevation`` (metres, in the GPS
    altitude's datum) or an open ``dem`` replace the default flat ground ``RelativeAltitude``
    below the camera. Never raises for bad metadata.
    """
    if result.georef is not None:
        return result
    camera = result.camera
    if camera is None:
        positions = Positions("pixel", reason="no GPS position in the file's metadata")
    else:
        try:
            model = camera_model(camera, result.width, result.height, ground_elevation, dem)
        except CameraModelError as exc:
            positions = Positions("pixel", reason=exc.reason)
        else:
            boxes = result.detections.boxes.detach().cpu().double().numpy().reshape(-1, 4)
            positions = project_boxes(model, boxes)
            outline = frame_footprint(model, result.width, result.height)
            positions.footprint = outline if np.isfinite(outline).all() else None
            camera = {**camera, "focal_length_px": model.intrinsics.focal_px, "height_above_ground": model.height_above_ground}
            view = off_nadir(camera)
            if view is not None and view > max_off_nadir:
                positions.quality = "oblique"
    return dataclasses.replace(result, camera=camera, ground=positions)


def apply_camera_models(
    results: Iterable[ImageResult],
    ground_elevation: Optional[float] = None,
    dem: Union[Dem, str, Path, None] = None,
    max_off_nadir: float = MAX_OFF_NADIR,
) -> list[ImageResult]:
    """:func:`apply_camera_model` over ``results``; ``dem`` may be a path, opened (and closed)
    here once for all of them. Raises :class:`SSPNetError` for an unusable DEM or for both a
    ground elevation and a DEM."""
    if isinstance(dem, (str, Path)):
        with open_ground(ground_elevation, dem) as opened:  # type: ignore[union-attr]
            return [apply_camera_model(r, ground_elevation, opened, max_off_nadir) for r in results]
    if ground_elevation is not None and dem is not None:
        raise SSPNetError("give a ground elevation or a DEM, not both")
    return [apply_camera_model(r, ground_elevation, dem, max_off_nadir) for r in results]
