"""Pages made small enough to show: in a logger at each validation, and in the HTML reports."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

LONG_SIDE = 1200  # readable when enlarged, about 100 KB for an A4 scan


def page_thumbnail(path: str | None, long_side: int = LONG_SIDE) -> Image.Image | None:
    """The page in RGB, its long side at most `long_side`; None when it cannot be read."""
    if not path or not Path(path).is_file():
        return None
    try:
        with Image.open(path) as image:
            thumbnail = image.convert("RGB")
            thumbnail.thumbnail((long_side, long_side))
            return thumbnail
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
