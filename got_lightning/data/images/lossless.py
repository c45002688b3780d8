"""PNG and TIFF pages decoded by libpng and libtiff through imagecodecs, straight into an array.

Scans of books are mostly lossless PNG and TIFF; Pillow decodes them into its own 4-byte pixel
layout and copies them out again, which made a 2480x3508 PNG page our slowest input. imagecodecs
(libpng with zlib-ng, libtiff with libdeflate) gives the same pixels in about half the time, and
deflate-compressed TIFF in a third. Only layouts whose pixels are known to equal Pillow's take this
path (8-bit grey and RGB, 16-bit grey and RGB; uncompressed, LZW, deflate or PackBits TIFF with
black-is-zero or RGB photometry); everything else, and any file imagecodecs refuses, is left to
Pillow, which accepts and refuses what it always did.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image

# Pillow's raw modes (how the file stores pixels) that imagecodecs decodes to the same values.
_PNG_RAWMODES = {"RGB", "L", "I;16B", "RGB;16B"}
_TIFF_RAWMODES = {"RGB", "L", "I;16", "I;16N", "I;16B", "RGB;16N", "RGB;16B"}
_TIFF_COMPRESSIONS = {"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"}
_TIFF_PHOTOMETRIC = {1, 2}  # BlackIsZero, RGB
_PHOTOMETRIC_TAG = 262


def decode_lossless(image: Image.Image, path: Any) -> np.ndarray | None:
    """RGB uint8 `(height, width, 3)` pixels of an opened PNG or TIFF page, or None when Pillow
    must decode it."""
    rawmode = _rawmode(image)
    if image.format == "PNG" and rawmode in _PNG_RAWMODES:
        decode = imagecodecs.png_decode
    elif image.format == "TIFF" and rawmode in _TIFF_RAWMODES and _plain_tiff(image):
        frame = image.tell()

        def decode(buffer: Any) -> np.ndarray:
            return imagecodecs.tiff_decode(buffer, index=frame)
    else:
        return None
    try:
        with _encoded(path) as data:
            pixels = decode(data)
    except Exception:  # imagecodecs raises its codecs' own errors: Pillow decides on damaged files
        return None
    width, height = image.size
    if pixels.shape[:2] != (height, width) or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        return None
    return _to_rgb8(pixels)


@contextmanager
def _encoded(path: Any) -> Iterator[Any]:
    """The file's bytes: in memory already, else memory-mapped (one page of a long multi-page
    TIFF reads only that page's strips)."""
    if not isinstance(path, Path):
        yield path.read_bytes()  # an EncodedImage: the bytes are in memory
        return
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


def _rawmode(image: Image.Image) -> str | None:
    if not image.tile:
        return None
    args = image.tile[0][3]
    rawmode = args[0] if isinstance(args, tuple) else args
    return rawmode if isinstance(rawmode, str) else None


def _plain_tiff(image: Image.Image) -> bool:
    photometric = getattr(image, "tag_v2", {}).get(_PHOTOMETRIC_TAG)
    return image.info.get("compression") in _TIFF_COMPRESSIONS and photometric in _TIFF_PHOTOMETRIC


def _to_rgb8(pixels: np.ndarray) -> np.ndarray | None:
    """As Pillow gives them: 16-bit grey scaled to 8 bits (rounded), 16-bit RGB by its high byte."""
    if pixels.dtype == np.uint16:
        pixels = np.rint(pixels / 257.0).astype(np.uint8) if pixels.ndim == 2 else (pixels >> 8).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        return None
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels)
