"""Image sizes from file headers, without decoding pixels."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from PIL import Image, UnidentifiedImageError

from sspnet_cli.errors import InputError


def read_image_size(path: Union[str, Path]) -> tuple[int, int]:
    """``(width, height)`` of the image at ``path`` as stored, read from the header only (PIL,
    else GDAL through rasterio). EXIF orientation is not applied: frames are decoded on the
    sensor's grid (see :mod:`sspnet_cli.imagery.sources`), and sizes must agree with them.
    Raises :class:`InputError` if it is not an image."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
        return int(width), int(height)
    except FileNotFoundError:
        raise InputError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        problem = e
    try:
        import rasterio  # lazily: GDAL's start-up is paid only for rasters PIL cannot read

        with rasterio.Env(), rasterio.open(path) as ds:
            return int(ds.width), int(ds.height)
    except Exception:
        raise InputError(path, f"not a readable image ({problem.__class__.__name__})") from None
