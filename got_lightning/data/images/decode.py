"""Open, check and decode page images: EXIF orientation, every colour mode to RGB, fast JPEG decoding."""

from __future__ import annotations

import io
import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import simplejpeg
import torch
from PIL import Image, UnidentifiedImageError

from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.lossless import decode_lossless

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
# What Pillow's ImageOps.exif_transpose does for each EXIF orientation, on (height, width, 3) pixels.
_UPRIGHT = {
    1: lambda pixels: pixels,
    2: lambda pixels: pixels.flip(1),
    3: lambda pixels: pixels.flip(0, 1),
    4: lambda pixels: pixels.flip(0),
    5: lambda pixels: pixels.transpose(0, 1),
    6: lambda pixels: pixels.rot90(-1, (0, 1)),
    7: lambda pixels: pixels.transpose(0, 1).flip(0, 1),
    8: lambda pixels: pixels.rot90(1, (0, 1)),
}
_EXIF_ORIENTATION = 0x0112
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class EncodedImage:
    """An image file's bytes held in memory (an upload, an image stored inside a dataset file),
    named in every message as its file would be."""

    name: str
    data: bytes

    def read_bytes(self) -> bytes:
        return self.data

    def __str__(self) -> str:
        return self.name


# Where an image is read from: a file on disk, or an encoded file in memory.
ImageFile = Path | EncodedImage


def resolve_image_path(image_root: Path, ref: str, allow_outside_root: bool) -> Path:
    """The file a record's image reference names; refuses references escaping `image_root`."""
    candidate = Path(ref)
    if not candidate.is_absolute():
        candidate = image_root / candidate
    resolved = candidate.resolve()
    if not allow_outside_root and not resolved.is_relative_to(image_root.resolve()):
        raise BadSampleError(
            f"image path escapes image_root: {str(image_root)!r} (resolves to {str(resolved)!r}); "
            "set allow_outside_root: true to permit it",
            image=ref,
        )
    if not resolved.exists():
        raise BadSampleError(f"image file not found: {candidate}", image=ref)
    return resolved


PAGE_SUFFIX = re.compile(r"^(?P<file>.+)#(?P<page>[1-9]\d*)$")


def split_page(ref: str) -> tuple[str, int | None]:
    """`scan.tif#2` -> (`scan.tif`, 1): the file and the 0-based page of a multi-page file it names."""
    match = PAGE_SUFFIX.match(ref)
    return (match["file"], int(match["page"]) - 1) if match else (ref, None)


def page_count(image: Image.Image) -> int:
    return getattr(image, "n_frames", 1)


def tile_files(folder: Path) -> list[Path]:
    """Pre-cut tiles in a folder (upstream multi-tile style), in name order."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BadSampleError(f"image folder has no image files ({', '.join(IMAGE_SUFFIXES)}): {folder}")
    return files


@contextmanager
def _pixel_limit(max_pixels: int | None):
    # We check the limit ourselves so the reason is reported; Pillow's own check must not fire first.
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def open_image(path: ImageFile, max_pixels: int | None, frame: int = 0) -> Image.Image:
    """Open an image lazily (header only), refusing empty, non-image and oversized files; `frame`
    picks a page of a multi-page file (0: the first)."""
    in_memory = isinstance(path, EncodedImage)
    size = len(path.data) if in_memory else path.stat().st_size
    if size == 0:
        raise BadSampleError(f"image file is empty (0 bytes): {path}")
    with _pixel_limit(max_pixels):
        try:
            image = Image.open(io.BytesIO(path.data) if in_memory else path)
        except UnidentifiedImageError as error:
            raise BadSampleError(f"not an image file Pillow can read: {path}") from error
        except OSError as error:
            raise BadSampleError(f"cannot open image: {path}: {error}") from error
    if frame:
        pages = getattr(image, "n_frames", 1)
        try:
            image.seek(frame)
        except EOFError as error:
            image.close()
            raise BadSampleError(f"{path} has {pages} page(s): page {frame + 1} does not exist") from error
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        image.close()
        raise BadSampleError(
            f"decompression bomb refused: {width}x{height} = {width * height} pixels exceeds max_image_pixels={max_pixels}"
        )
    return image


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 to 8; 1 when absent), read without decoding the pixels."""
    try:
        orientation = _exif(image).get(_EXIF_ORIENTATION, 1)
    except Exception as error:  # malformed EXIF blocks raise assorted errors inside Pillow
        raise BadSampleError(f"unreadable EXIF orientation: {image.filename}: {error}") from error
    return orientation if orientation in _UPRIGHT else 1


def _exif(image: Image.Image) -> Image.Exif:
    # Pillow decodes a whole PNG to look for metadata after its pixels (most PNGs have none):
    # walking the chunk headers finds an eXIf chunk there without decoding anything.
    if image.format != "PNG" or "exif" in image.info:
        return image.getexif()
    exif, text_after_pixels = _png_metadata_after_pixels(image.fp)
    if text_after_pixels:
        return image.getexif()  # text chunks may hold XMP orientation: Pillow reads them its way
    if exif is not None:
        image.info["exif"] = exif
    return Image.Image.getexif(image)


def _png_metadata_after_pixels(handle: BinaryIO) -> tuple[bytes | None, bool]:
    """The eXIf chunk of a PNG (None if it has none) and whether text chunks follow its pixels."""
    position = handle.tell()
    exif, text, seen_pixels = None, False, False
    try:
        handle.seek(8)
        while len(header := handle.read(8)) == 8:
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind == b"IEND":
                break
            if kind == b"eXIf":
                exif = handle.read(length)
                handle.seek(4, io.SEEK_CUR)
                continue
            seen_pixels |= kind == b"IDAT"
            text |= seen_pixels and kind in (b"tEXt", b"zTXt", b"iTXt")
            handle.seek(length + 4, io.SEEK_CUR)
    finally:
        handle.seek(position)
    return exif, text


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied, read from the header only."""
    width, height = image.size
    if exif_orientation(image) in _TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def decode_pixels(image: Image.Image, path: ImageFile, min_size: tuple[float, float] | None = None) -> torch.Tensor:
    """Decode to upright RGB uint8 pixels `(3, height, width)`.

    YCbCr and grey JPEGs decode with libjpeg-turbo straight into an array: the same pixels as
    Pillow's decode (same library, same settings) without Pillow's copy out of its own 4-byte
    pixel layout; plain PNG and TIFF pages likewise with libpng and libtiff (`lossless`). `min_size` (upright width, height) lets libjpeg-turbo decode them at 1/2, 1/4 or
    1/8 scale while staying at least that large. Other files, and JPEGs libjpeg-turbo flags as damaged,
    decode with Pillow, which accepts what it always accepted and refuses truncated files.
    """
    orientation = exif_orientation(image)
    if min_size is not None and orientation in _TRANSPOSING_ORIENTATIONS:
        min_size = (min_size[1], min_size[0])
    pixels = _decode_jpeg(image, path, min_size)
    if pixels is None:
        pixels = decode_lossless(image, path)
    if pixels is None:
        pixels = np.array(_decode_with_pillow(image, path))
    return _UPRIGHT[orientation](torch.from_numpy(pixels)).permute(2, 0, 1)


def check_decodes(image: Image.Image, path: ImageFile) -> None:
    """Decode as `decode_pixels` would, so the same files fail, but keep no pixels."""
    exif_orientation(image)
    if _decode_jpeg(image, path, None) is None and decode_lossless(image, path) is None:
        _decode_with_pillow(image, path)


def _decode_jpeg(image: Image.Image, path: ImageFile, min_size: tuple[float, float] | None) -> np.ndarray | None:
    """libjpeg-turbo's decode of a YCbCr or grey JPEG; None for other files and damaged JPEGs."""
    if image.format != "JPEG" or image.mode not in ("RGB", "L"):
        return None
    size, reduced = image.size, (0, 0)
    if min_size is not None:
        # The coarsest of 1/2, 1/4 and 1/8 that stays at least min_size.
        for denominator in (8, 4, 2):
            scaled = (math.ceil(size[0] / denominator), math.ceil(size[1] / denominator))
            if scaled[0] >= min_size[0] and scaled[1] >= min_size[1]:
                reduced = scaled
                break
    try:
        return simplejpeg.decode_jpeg(path.read_bytes(), colorspace="RGB", min_width=reduced[0], min_height=reduced[1])
    except ValueError:
        return None


def _decode_with_pillow(image: Image.Image, path: ImageFile) -> Image.Image:
    with _pixel_limit(None):
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise BadSampleError(f"truncated or corrupt image: {path}: {error}") from error
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every Pillow mode: 16-bit scaled (not clipped), transparency composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        image = Image.fromarray(_to_uint8(np.asarray(image), mode), mode="L")
    elif (mode == "P" and "transparency" in image.info) or mode in ("PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGB", image.size, WHITE)
        background.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    values = values.astype(np.float64)
    if mode == "F":
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
    else:
        # 16-bit modes span 0..65535; a 32-bit "I" image holding 8-bit data stays as it is.
        scale = 1.0 / 257.0 if mode.startswith("I;16") or (values.size and values.max() > 255) else 1.0
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
