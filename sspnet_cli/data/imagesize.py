"""Image sizes from file headers, without decoding pixels."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sspnet_cli.errors import InputError

# EXIF orientations that rotate by 90 degrees: OpenCV's imread applies them, so the frame the
# model sees is the header's size transposed.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


def read_image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of the image at ``path`` as it appears once loaded (EXIF orientation
    applied), read from the header only. Raises :class:`InputError` if it is not an image."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            try:
                orientation = im.getexif().get(_EXIF_ORIENTATION)
            except Exception:  # a broken EXIF block does not make the image unreadable
                orientation = None
    except FileNotFoundError:
        raise InputError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(path, f"not a readable image ({e.__class__.__name__})") from None
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return int(width), int(height)
