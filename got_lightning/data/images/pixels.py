"""Page images to normalized pixel tiles: `resize`, `pad` (letterbox on white) or `tiles`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image

from got_lightning.core.errors import SettingError
from got_lightning.data.images.decode import ImageFile, check_decodes, decode_pixels, open_image, oriented_size, page_count
from got_lightning.data.images.regions import Region
from got_lightning.data.images.resample import resize_bicubic
from got_lightning.data.images.tiling import cut_tiles, tile_grid

ImageMode = Literal["resize", "pad", "tiles"]
PageAugment = Callable[[torch.Tensor], torch.Tensor]  # uint8 (3, H, W) in and out
IMAGE_MODES: tuple[str, ...] = ("resize", "pad", "tiles")
# GOT normalizes with CLIP's per-channel statistics.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# (x / 255 - mean) / std as one multiply and one subtraction.
_SCALE = 1.0 / (255.0 * torch.tensor(CLIP_STD).view(3, 1, 1))
_SHIFT = torch.tensor(CLIP_MEAN).view(3, 1, 1) / torch.tensor(CLIP_STD).view(3, 1, 1)


@dataclass(frozen=True)
class PageProcessor:
    """Turns one page image file into `(tiles, 3, image_size, image_size)` normalized pixels.

    `draft_oversample` lets JPEGs decode at a reduced scale that stays at least this many times
    larger than the size the page is resized to (0 disables it: full decode).
    """

    image_size: int = 1024
    mode: ImageMode = "resize"
    min_tiles: int = 1
    max_tiles: int = 6
    draft_oversample: float = 0.0
    max_pixels: int | None = Image.MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        if self.mode not in IMAGE_MODES:
            raise SettingError(f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {self.mode!r}")
        if not 1 <= self.min_tiles <= self.max_tiles:
            raise SettingError(f"need 1 <= min_tiles <= max_tiles, got {self.min_tiles} and {self.max_tiles}")

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """(columns, rows) of tiles for an upright page size; (1, 1) outside `tiles` mode."""
        if self.mode != "tiles" or self.max_tiles == 1:
            return (1, 1)
        return tile_grid(width, height, self.image_size, self.min_tiles, self.max_tiles)

    def num_tiles(self, width: int, height: int) -> int:
        """Tiles a page of this upright size becomes, thumbnail included."""
        columns, rows = self.grid(width, height)
        return columns * rows + (1 if columns * rows > 1 else 0)

    def page_tiles(
        self, path: ImageFile, frame: int = 0, region: Region | None = None, augment: PageAugment | None = None
    ) -> torch.Tensor:
        """All tiles of one page file (its `frame`-th page, cut to `region`, then augmented), normalized."""
        image = open_image(path, self.max_pixels, frame)
        with image:
            width, height = region.size if region else oriented_size(image)
            grid = self.grid(width, height)
            page = decode_pixels(image, path, None if region else self._draft_size(width, height, grid))
        if region is not None:
            page = region.cut(page, str(path))
        if augment is not None:
            page = augment(page)
        return normalize(torch.stack(self._tiles(page, grid)))

    def verify(self, path: ImageFile, frame: int = 0) -> int:
        """Decode a file in full, as training would (corrupt or truncated data shows here), without
        building tiles: what `data check` needs, at a fraction of the cost. Returns its page count."""
        image = open_image(path, self.max_pixels, frame)
        with image:
            check_decodes(image, path)
            return page_count(image)

    def single_tile(self, path: ImageFile, augment: PageAugment | None = None) -> torch.Tensor:
        """A pre-cut tile file (augmented), resized to one tile whatever the mode."""
        image = open_image(path, self.max_pixels)
        with image:
            width, height = oriented_size(image)
            page = decode_pixels(image, path, self._draft_size(width, height, (1, 1)))
        if augment is not None:
            page = augment(page)
        return normalize(resize_bicubic(page, self.image_size, self.image_size)).unsqueeze(0)

    def _draft_size(self, width: int, height: int, grid: tuple[int, int]) -> tuple[float, float] | None:
        if self.draft_oversample <= 0:
            return None
        if self.mode == "pad":
            scale = self.image_size / max(width, height)
            target = (width * scale, height * scale)
        else:
            target = (grid[0] * self.image_size, grid[1] * self.image_size)
        return (target[0] * self.draft_oversample, target[1] * self.draft_oversample)

    def _tiles(self, page: torch.Tensor, grid: tuple[int, int]) -> list[torch.Tensor]:
        size = self.image_size
        if self.mode == "pad":
            return [letterbox(page, size)]
        if grid == (1, 1):
            return [resize_bicubic(page, size, size)]
        return cut_tiles(page, grid, size)


def letterbox(page: torch.Tensor, size: int) -> torch.Tensor:
    """Fit uint8 pixels `(3, H, W)` inside a white square keeping the aspect ratio, centred."""
    height, width = page.shape[1:]
    scale = size / max(width, height)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = torch.full((3, size, size), 255, dtype=torch.uint8)
    top, left = (size - new_height) // 2, (size - new_width) // 2
    canvas[:, top : top + new_height, left : left + new_width] = resize_bicubic(page, new_width, new_height)
    return canvas


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels `(..., 3, H, W)` to a CLIP-normalized float tensor of the same shape."""
    return pixels.contiguous().float().mul_(_SCALE).sub_(_SHIFT)
