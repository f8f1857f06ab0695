"""Image sources: frames and windows of (possibly huge) rasters as 8-bit RGB.

:func:`open_source` picks the reader from the file's first bytes, not its name:

* JPEG, PNG, BMP and WebP are decoded once with OpenCV (``cv2.imdecode`` of the file's bytes, so
  any path works) and kept in memory while the source is open.
* Everything else (TIFF/GeoTIFF, JPEG 2000, VRT, any GDAL raster) goes through rasterio and is
  read window by window; the whole raster is never loaded.

What every source returns from :meth:`ImageSource.read`: ``rgb``, a C-contiguous ``uint8``
``H x W x 3`` array, and ``valid``, a ``bool`` ``H x W`` array or ``None`` when every pixel is
valid. Pixels outside the frame (a window may reach past it) are padded with 0, never stretched,
and invalid. Invalid pixels inside the frame (nodata, mask, alpha 0, NaN) are also set to 0.

Decisions:

* **EXIF orientation is ignored**: pixels stay on the sensor's grid, which is what the camera
  model, the georeferencing and ground-truth boxes from drone datasets refer to. The tag is kept
  in :attr:`ImageSource.orientation` and a rotated photo gets a note in ``warnings``.
* **Truncated JPEGs are refused** (:class:`InputError`): libjpeg fills the missing part with
  grey, so a partial decode would silently leave part of the frame unsearched. A JPEG counts as
  truncated when the file ends before the end-of-image marker (found by walking its segments).
* **Bands**: one band is replicated to grey RGB (a palette is expanded); 2 bands are grey +
  alpha; 3 or more use bands 1, 2, 3 unless ``bands`` (1-based, one or three numbers) is given.
* **Stretch**: ``uint8`` data is used as it is. Any other type (``uint16``, ``int16``,
  ``float32``...) is mapped per band linearly from [p2, p98] to [0, 255] and clipped, where p2
  and p98 are the 2nd and 98th percentiles of the band's valid pixels, measured once when the
  source opens, on a decimated read of the whole raster (longest side at most 1024 px; GDAL
  overviews used when present) or, for a raster over 64 Mpx without overviews, on 8 x 8
  patches of 128 px spread evenly over it (a decimated read would decompress every block).
  Every window of a raster thus uses the same mapping.
* **Validity**: a pixel is invalid when the dataset mask or alpha band is 0, when all selected
  bands equal the raster's nodata value (GDAL's rule for a dataset mask: a dark pixel with one
  band at 0 is still valid), or when any selected band is NaN or infinite.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np

from sspnet_cli.errors import InputError, SSPNetError
from sspnet_cli.imagery.exif import read_exif
from sspnet_cli.types import GeoRef, Window

#: longest side of the decimated read used to measure the stretch
STRETCH_SAMPLE_SIDE = 1024
STRETCH_PERCENTILES = (2.0, 98.0)
#: rasters up to this many pixels (or with overviews) are sampled by one decimated read
STRETCH_FULL_READ_PIXELS = 64_000_000
#: otherwise a grid of this many patches per side
STRETCH_PATCHES = 8

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
)
# world files GDAL reads beside a JPEG/PNG/BMP (e.g. an orthomosaic exported with a .jgw)
_WORLD_SUFFIXES = (".wld", ".jgw", ".jpgw", ".jpegw", ".pgw", ".pngw", ".bpw", ".bmpw")


@dataclass(frozen=True)
class Nodata:
    """How a source marks invalid pixels (besides the padding outside the frame)."""

    value: Optional[float] = None  # the raster's nodata value
    nan: bool = False  # float data: NaN / inf pixels are invalid
    mask: Optional[str] = None  # "alpha" or "mask" (GDAL per-dataset mask / .msk)


@dataclass(frozen=True)
class Stretch:
    """Per-band linear mapping of [lo, hi] to [0, 255] (clipped), for non-8-bit data."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``H x W x 3`` numbers -> C-contiguous ``uint8``; NaN becomes 0."""
        lo = np.asarray(self.lo, dtype=np.float32)
        scale = np.float32(255.0) / (np.asarray(self.hi, dtype=np.float32) - lo)
        out = np.empty(data.shape, np.uint8)
        # in chunks of rows: the float32 temporary stays small for a band of a huge raster
        rows = max(1, (1 << 22) // max(1, data.shape[1] * data.shape[2]))
        for y in range(0, data.shape[0], rows):
            part = (data[y : y + rows].astype(np.float32) - lo) * scale
            np.nan_to_num(part, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
            np.clip(part, 0.0, 255.0, out=part)
            part += 0.5
            out[y : y + rows] = part
        return out


def measure_stretch(samples: np.ndarray, valid: Optional[np.ndarray]) -> Stretch:
    """The stretch of ``H x W x 3`` ``samples``: per band, the 2nd-98th percentile of the valid
    pixels (all finite ones when ``valid`` is None); a constant band gets [v, v + 1]."""
    lo, hi = [], []
    for band in range(3):
        values = samples[..., band]
        values = values[valid] if valid is not None else values.ravel()
        values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if values.size == 0:
            p_lo, p_hi = 0.0, 1.0
        else:
            p_lo, p_hi = (float(v) for v in np.percentile(values, STRETCH_PERCENTILES))
        if not p_hi > p_lo:
            p_hi = p_lo + 1.0
        lo.append(p_lo)
        hi.append(p_hi)
    return Stretch(tuple(lo), tuple(hi))  # type: ignore[arg-type]


def _overview_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_bands(bands: Optional[Sequence[int]]) -> Optional[tuple[int, int, int]]:
    if bands is None:
        return None
    bands = tuple(bands)
    if len(bands) == 1:
        bands = bands * 3
    if len(bands) != 3 or not all(isinstance(b, (int, np.integer)) and b >= 1 for b in bands):
        raise SSPNetError(f"bands must be one or three band numbers counted from 1, got {bands!r}")
    return tuple(int(b) for b in bands)  # type: ignore[return-value]


class ImageSource:
    """One open frame. Use as a context manager, or call :meth:`close`.

    Attributes: ``path``, ``width``, ``height``, ``georef`` (:class:`GeoRef` or None), ``camera``
    (EXIF GPS and drone attitude, see :func:`sspnet_cli.imagery.exif.read_exif`, or None),
    ``nodata`` (:class:`Nodata` or None when only padding can be invalid), ``stretch``
    (:class:`Stretch` or None for 8-bit data), ``bands`` (the 1-based bands shown as R, G, B),
    ``orientation`` (EXIF tag, not applied), ``format`` and ``warnings`` (notes for the user).
    """

    path: Path
    width: int
    height: int
    format: str
    bands: tuple[int, int, int]
    georef: Optional[GeoRef] = None
    camera: Optional[dict[str, Any]] = None
    nodata: Optional[Nodata] = None
    stretch: Optional[Stretch] = None
    orientation: int = 1
    #: the narrowest window that costs no more to read than a whole row of the frame (None: any
    #: width reads as cheaply): a striped raster decodes whole rows however little is asked
    read_width: Optional[int] = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []
        self._closed = False

    # -- reading -------------------------------------------------------------------------

    def read(self, window: Window) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Pixels of ``window`` (which may reach past the frame) as ``(rgb, valid)``.

        ``rgb`` is ``window.height x window.width x 3`` ``uint8``, C-contiguous, owned by the
        caller; ``valid`` is a ``bool`` array of the same height and width, or ``None`` when all
        pixels are valid. Outside the frame: zeros, invalid.
        """
        self._check_open()
        x, y, w, h = (int(v) for v in window)
        if w < 0 or h < 0:
            raise ValueError(f"window size must not be negative: {window}")
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x0 >= x1 or y0 >= y1:
            return np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool)
        rgb, valid = self._read_inside(x0, y0, x1, y1)
        if (x0, y0, x1, y1) == (x, y, x + w, y + h):
            return rgb, valid
        out = np.zeros((h, w, 3), np.uint8)
        out_valid = np.zeros((h, w), bool)
        inner = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
        out[inner] = rgb
        out_valid[inner] = True if valid is None else valid
        return out, out_valid

    def read_rows(self, y: int, height: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """A band of ``height`` full-width rows from row ``y`` (rows past the bottom padded):
        memory grows with the raster's width, not its area."""
        return self.read(Window(0, y, self.width, height))

    def read_overview(self, max_side: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The whole frame down-scaled so its longest side is at most ``max_side`` (never
        up-scaled), as ``(rgb, valid)``; memory grows with ``max_side``, not the raster."""
        self._check_open()
        if max_side < 1:
            raise ValueError("max_side must be at least 1")
        return self._read_overview(*_overview_shape(self.width, self.height, max_side))

    def _read_inside(self, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        raise NotImplementedError

    def _read_overview(self, width: int, height: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        raise NotImplementedError

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the decoded pixels / the open dataset. Closing twice is harmless."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise SSPNetError(f"{self.path}: image source used after close()")

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self.path)!r} {self.width}x{self.height} {self.format}>"


def _finish(data: np.ndarray, valid: Optional[np.ndarray], stretch: Optional[Stretch]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``H x W x 3`` data -> (uint8 C-contiguous rgb with invalid pixels 0, valid or None)."""
    if data.dtype.kind == "f":
        finite = np.isfinite(data).all(axis=2)
        if not finite.all():
            valid = finite if valid is None else valid & finite
    # data is always a fresh array here, so 8-bit data is used without another copy
    rgb = stretch.apply(data) if stretch is not None else np.ascontiguousarray(data, dtype=np.uint8)
    if valid is not None:
        if valid.all():
            valid = None
        else:
            rgb[~valid] = 0
    return rgb, valid


def _note_orientation(source: ImageSource) -> None:
    if source.orientation != 1:
        source.warnings.append(f"EXIF orientation {source.orientation} ignored: boxes refer to the pixels as stored")


# --------------------------------------------------------------------------------------------
# JPEG / PNG / BMP / WebP: decoded once with OpenCV


# inside entropy-coded data 0xFF is followed by 0x00 (stuffing) or a restart marker D0-D7; any
# other byte after 0xFF (and after fill 0xFFs) starts the next marker
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])


def _jpeg_is_complete(data: bytes) -> bool:
    """False when the JPEG ends before its end-of-image marker (walking its segments from the
    start, so bytes appended after the image, such as a phone's motion-photo video, do not
    matter). A file whose structure cannot be followed counts as complete: the decoder judges."""
    n, pos = len(data), 2  # after SOI
    while True:
        if pos >= n:
            return False
        if data[pos] != 0xFF:
            return True  # not where a marker should be: leave it to the decoder
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return False
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            return True
        if marker in _STANDALONE_MARKERS:
            continue
        if pos + 2 > n:
            return False
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if pos > n:
            return False
        if marker == 0xDA:  # SOS: skip the entropy-coded scan
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()


class InMemorySource(ImageSource):
    """A frame held in memory as 8-bit RGB (plus a validity mask); windows are slices of it."""

    _rgb: np.ndarray
    _valid: Optional[np.ndarray]

    def _read_inside(self, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        rgb = self._rgb[y0:y1, x0:x1].copy()  # a copy: callers may write into their tile
        valid = None if self._valid is None else self._valid[y0:y1, x0:x1].copy()
        if valid is not None and valid.all():
            valid = None
        return rgb, valid

    def _read_overview(self, width: int, height: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        if (width, height) == (self.width, self.height):
            return self._read_inside(0, 0, self.width, self.height)
        rgb = cv2.resize(self._rgb, (width, height), interpolation=cv2.INTER_AREA)
        valid = None
        if self._valid is not None:
            valid = cv2.resize(self._valid.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        return np.ascontiguousarray(rgb), valid

    def close(self) -> None:
        self._rgb = self._valid = None  # type: ignore[assignment]
        super().close()


def array_source(rgb: np.ndarray, name: str = "<array>") -> InMemorySource:
    """A source over an RGB ``uint8`` H x W x 3 array (or H x W grey) already in memory."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] != 3):
        raise SSPNetError("an image array must be uint8, H x W x 3 (RGB) or H x W (grey)")
    source = InMemorySource(Path(name))
    source.format = "array"
    source.bands = (1, 2, 3)
    source.height, source.width = rgb.shape[:2]
    source._rgb = np.ascontiguousarray(np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb)
    source._valid = None
    return source


def resized_source(source: ImageSource, width: int, height: int) -> InMemorySource:
    """``source`` resized to ``width`` x ``height`` (bilinear; area-averaged where it shrinks),
    decoded whole into memory, with its georeference and camera dropped (they describe the
    original pixels). For dataset frames whose stored size is not their true shape, e.g.
    TinyPerson-RF's 16:9 frames squeezed to 640x640; ``source`` is closed."""
    if width < 1 or height < 1:
        raise SSPNetError(f"a frame size must be positive, got {width}x{height}")
    try:
        rgb, valid = source.read(Window(0, 0, source.width, source.height))
    finally:
        source.close()
    shrink = width * height < source.width * source.height
    out = array_source(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR), str(source.path))
    out.format = source.format
    if valid is not None:
        out._valid = cv2.resize(valid.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return out


class DecodedImageSource(InMemorySource):
    """A JPEG/PNG/BMP/WebP decoded into memory once; windows are slices of it."""

    def __init__(self, path: Path, fmt: str, data: np.ndarray, bands: Optional[tuple[int, int, int]]) -> None:
        super().__init__(path)
        self.format = fmt
        if fmt == "JPEG" and not _jpeg_is_complete(data.tobytes()):
            raise InputError(path, "truncated JPEG (no end-of-image marker): the file is damaged or was not copied completely")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # IMREAD_UNCHANGED keeps 16-bit PNGs and alpha, and does not apply EXIF orientation
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        del data
        if image is None or image.size == 0:
            raise InputError(path, f"not an image or damaged (OpenCV could not decode this {fmt} file)")
        if image.ndim == 2:
            channels = [image]
        else:
            order = [2, 1, 0, 3] if image.shape[2] >= 3 else list(range(image.shape[2]))
            channels = [image[..., i] for i in order[: image.shape[2]]]
        count = len(channels)
        alpha = channels[3] if count == 4 else channels[1] if count == 2 else None
        if bands is None:
            bands = (1, 2, 3) if count >= 3 else (1, 1, 1)
        elif max(bands) > count:
            raise InputError(path, f"has {count} band(s); bands {bands} asks for band {max(bands)}")
        self.bands = bands
        self.height, self.width = image.shape[:2]
        valid = None
        if alpha is not None and count not in bands:  # an alpha shown as a colour is no mask
            valid = alpha > 0
            self.nodata = Nodata(mask="alpha")
        if image.ndim == 3 and image.shape[2] == 3 and bands == (1, 2, 3):
            data3 = cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: one frame in memory
        else:
            data3 = np.stack([channels[b - 1] for b in bands], axis=2)
        del image, channels, alpha
        if data3.dtype != np.uint8:
            if data3.dtype.kind == "f":
                self.nodata = Nodata(nan=True, mask=self.nodata.mask if self.nodata else None)
            step = max(1, math.ceil(max(self.width, self.height) / STRETCH_SAMPLE_SIDE))
            self.stretch = measure_stretch(data3[::step, ::step], None if valid is None else valid[::step, ::step])
        self._rgb, self._valid = _finish(data3, valid, self.stretch)
        del data3

        self.camera, self.orientation = read_exif(path)
        _note_orientation(self)
        self.georef = _sidecar_georef(path, self.width, self.height, self.warnings)


# --------------------------------------------------------------------------------------------
# GDAL rasters through rasterio, read window by window


#: GDAL's block cache, in MB, unless the user sets GDAL_CACHEMAX: GDAL's own default (5 % of RAM)
#: fills up as bands of a huge raster stream past. Tile rows are read once, in pieces at most 4,096
#: px wide (inference/engine.py), so the cache only has to hold one piece's blocks: 512 px blocks
#: of an RGB raster, two block rows of nine, 14 MB. Blocks a piece shares with the next tile row are
#: decoded again, which costs far less than the model's time on those tiles. 64 MB (one whole block
#: row of a 20,000 px raster) took 158 MiB off the peak of a 20,000 x 2,500 run against 256 MB; 8 MB
#: took 54 MB more off a 20,000 x 1,500 run, no slower (benchmarks/README.md, "Memory on huge rasters").
GDAL_CACHE_MB = 16


def _rasterio():
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))  # read by GDAL at its first block read
    import rasterio  # imported lazily: plain-photo runs never pay for GDAL's start-up

    return rasterio


def _georef_of(ds: Any, warn: list[str]) -> Optional[GeoRef]:
    transform = ds.transform
    has_transform = not transform.is_identity
    if ds.crs is None:
        if has_transform:
            warn.append("has a pixel-to-map transform but no CRS: positions are given in pixels")
        return None
    if not has_transform:
        gcps, _ = ds.gcps
        how = "ground control points" if gcps else "a CRS without a pixel-to-map transform"
        warn.append(f"georeferenced by {how} (not supported): positions are given in pixels")
        return None
    # whether the CRS can place the raster in WGS84 is checked a layer up (geo.check_source_georef)
    return GeoRef(ds.crs.to_wkt(), tuple(float(v) for v in tuple(transform)[:6]))  # type: ignore[arg-type]


def _sidecar_georef(path: Path, width: int, height: int, warn: list[str]) -> Optional[GeoRef]:
    """Georeferencing of a plain image from a world file or ``.aux.xml`` beside it, if any."""
    candidates = [path.with_name(path.name + ".aux.xml")]
    candidates += [path.with_suffix(s) for s in _WORLD_SUFFIXES]
    candidates += [path.with_suffix(s.upper()) for s in _WORLD_SUFFIXES]
    if not any(c.is_file() for c in candidates):
        return None
    rasterio = _rasterio()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                if (ds.width, ds.height) != (width, height):
                    return None
                return _georef_of(ds, warn)
    except Exception:
        warn.append("has a world file / .aux.xml that GDAL could not read: positions are given in pixels")
        return None


def _gdal_failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class RasterSource(ImageSource):
    """A GDAL raster read in windows with rasterio; only ``read``'s windows are ever loaded."""

    def __init__(self, path: Path, bands: Optional[tuple[int, int, int]]) -> None:
        super().__init__(path)
        rasterio = _rasterio()
        from rasterio.enums import ColorInterp, MaskFlags

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NotGeoreferencedWarning for plain rasters
                self._ds = rasterio.open(path)
        except Exception:
            raise InputError(path, "not an image or damaged (unrecognised or unreadable format)") from None
        try:
            ds = self._ds
            self.format = str(ds.driver)
            self.width, self.height = int(ds.width), int(ds.height)
            count = int(ds.count)
            if count and int(ds.block_shapes[0][1]) >= self.width:
                self.read_width = self.width  # stripes of whole rows
            if count == 0 or self.width == 0 or self.height == 0:
                raise InputError(path, "raster has no pixels or no bands")
            interp = list(ds.colorinterp)
            alpha_band = next((i + 1 for i, c in enumerate(interp) if c == ColorInterp.alpha), None)
            if bands is None:
                colour = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
                bands = (1, 2, 3) if len(colour) >= 3 else (1, 1, 1)
            elif max(bands) > count:
                raise InputError(path, f"has {count} band(s); bands {bands} asks for band {max(bands)}")
            self.bands = bands
            self._indexes = sorted(set(bands))
            self._pick = [self._indexes.index(b) for b in bands]
            self._lut: Optional[np.ndarray] = None
            if interp[bands[0] - 1] == ColorInterp.palette and len(set(bands)) == 1:
                self._lut = self._palette(bands[0])

            flags = ds.mask_flag_enums[bands[0] - 1]
            mask = None
            if alpha_band is not None and alpha_band not in bands:
                mask = "alpha"
            elif MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
                mask = "mask"
            self._mask_kind = mask
            self._mask_band = alpha_band if mask == "alpha" else bands[0] if mask == "mask" else None
            dtype = np.dtype(ds.dtypes[bands[0] - 1])
            if dtype.kind == "c":
                raise InputError(path, "complex-valued raster (e.g. SAR) is not supported")
            nodata = ds.nodata
            nodata_value = None if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)) else float(nodata)
            is_float = dtype.kind == "f"
            if mask or nodata_value is not None or is_float:
                self.nodata = Nodata(value=nodata_value, nan=is_float, mask=mask)
            self._nodata_value = nodata_value
            if any(np.dtype(ds.dtypes[b - 1]) != np.uint8 for b in bands) and self._lut is None:
                self.stretch = measure_stretch(*self._stretch_samples())
            self.georef = _georef_of(ds, self.warnings)
            if self.georef is None:  # e.g. a drone TIFF: EXIF GPS instead of georeferencing
                self.camera, self.orientation = read_exif(path)
                _note_orientation(self)
        except InputError:
            self._ds.close()
            raise
        except Exception as exc:
            self._ds.close()
            raise InputError(path, f"damaged raster (reading failed: {_gdal_failure(exc)})") from None

    def _stretch_samples(self) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Pixels to measure the stretch on: a decimated read of the whole raster when that is
        cheap (GDAL overviews, or at most :data:`STRETCH_FULL_READ_PIXELS`); otherwise
        :data:`STRETCH_PATCHES` x :data:`STRETCH_PATCHES` patches of 128 px on an even grid, since
        a decimated read without overviews would decompress every block of a huge raster."""
        from rasterio.windows import Window as RioWindow

        if self._ds.overviews(self._indexes[0]) or self.width * self.height <= STRETCH_FULL_READ_PIXELS:
            w, h = _overview_shape(self.width, self.height, STRETCH_SAMPLE_SIDE)
            return self._raw(None, (h, w))
        size, n = 128, STRETCH_PATCHES
        parts, masks = [], []
        for i in range(n):
            for j in range(n):
                x = int((j + 0.5) * self.width / n - size / 2)
                y = int((i + 0.5) * self.height / n - size / 2)
                win = RioWindow(max(0, x), max(0, y), min(size, self.width), min(size, self.height))
                data, valid = self._raw(win, None)
                parts.append(data.reshape(-1, 3))
                masks.append(np.ones(len(parts[-1]), bool) if valid is None else valid.reshape(-1))
        return np.concatenate(parts)[None], np.concatenate(masks)[None]

    def _palette(self, band: int) -> Optional[np.ndarray]:
        try:
            cmap = self._ds.colormap(band)
        except ValueError:
            return None
        lut = np.zeros((max(256, max(cmap) + 1), 3), np.uint8)
        for index, rgba in cmap.items():
            lut[index] = rgba[:3]
        return lut

    def _raw(self, window: Any, out_shape: Optional[tuple[int, int]], average: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Selected bands as ``H x W x 3`` in their own dtype (decimated to ``out_shape`` if
        given), with the validity of the mask and nodata rules (NaN is left to :func:`_finish`)."""
        ds = self._ds
        kwargs: dict[str, Any] = {"window": window}
        if out_shape is not None:
            from rasterio.enums import Resampling

            kwargs["out_shape"] = (len(self._indexes), *out_shape)
            # nearest for statistics (a plain sample) and palettes (indices do not average);
            # GDAL's average skips nodata, so a pixel of the result is nodata only if all were
            use_average = average and self._lut is None
            kwargs["resampling"] = Resampling.average if use_average else Resampling.nearest
        data = ds.read(self._indexes, **kwargs)
        data = np.moveaxis(data, 0, -1)  # a view; _finish makes the one C-contiguous copy
        if self._pick != list(range(len(self._pick))):
            data = data[..., self._pick]
        valid = None
        if self._nodata_value is not None:
            valid = ~(data == self._nodata_value).all(axis=2)
        if self._mask_band is not None:
            if out_shape is not None:
                kwargs["out_shape"] = out_shape
            # the alpha band's own values (GDAL flags alpha only when the file says so); for a
            # per-dataset mask, the mask of any band
            read = ds.read if self._mask_kind == "alpha" else ds.read_masks
            m = read(self._mask_band, **kwargs) > 0
            valid = m if valid is None else valid & m
        if self._lut is not None:
            data = self._lut[np.clip(data[..., 0], 0, len(self._lut) - 1).astype(np.intp)]
        return data, valid

    def _read_inside(self, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        from rasterio.windows import Window as RioWindow

        try:
            data, valid = self._raw(RioWindow(x0, y0, x1 - x0, y1 - y0), None)
        except Exception as exc:
            raise InputError(self.path, f"damaged raster (reading failed: {_gdal_failure(exc)})") from None
        return _finish(data, valid, self.stretch)

    def _read_overview(self, width: int, height: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        try:
            data, valid = self._raw(None, (height, width), average=True)
        except Exception as exc:
            raise InputError(self.path, f"damaged raster (reading failed: {_gdal_failure(exc)})") from None
        return _finish(data, valid, self.stretch)

    def close(self) -> None:
        if not self._closed:
            self._ds.close()
        super().close()


# --------------------------------------------------------------------------------------------


def open_source(path: Union[str, Path], bands: Optional[Sequence[int]] = None) -> ImageSource:
    """Open an image or raster for reading.

    ``bands``: 1-based band numbers shown as R, G, B (one number: grey). Raises
    :class:`InputError` (one line) when the file is missing, empty, not an image or damaged, and
    :class:`SSPNetError` when ``bands`` itself is malformed.
    """
    bands = _check_bands(bands)
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError(p, "is a folder, not an image")
        with open(p, "rb") as f:
            head = f.read(16)
        if not head:
            raise InputError(p, "empty file (0 bytes)")
        fmt = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
        if fmt is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            fmt = "WebP"
        if fmt is None:
            return RasterSource(p, bands)
        data = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(p, "no such file") from None
    except PermissionError:
        raise InputError(p, "cannot read the file (permission denied)") from None
    except OSError as exc:
        raise InputError(p, f"cannot read the file ({exc.strerror or type(exc).__name__})") from None
    except MemoryError:
        raise InputError(p, "not enough memory to decode this image") from None
    try:
        return DecodedImageSource(p, fmt, data, bands)
    except MemoryError:
        raise InputError(p, "not enough memory to decode this image") from None
