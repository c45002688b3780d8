"""A part of a page image: the box (and optionally the polygon) of a PAGE-XML or ALTO region or
line, cut out of the decoded page before it is resized."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from got_lightning.data.errors import BadSampleError

WHITE = 255


@dataclass(frozen=True)
class Region:
    """`box` (x0, y0, x1, y1) in pixels of the upright page, x1 and y1 exclusive; `polygon` the
    element's outline, painted white outside when `mask` is set."""

    box: tuple[int, int, int, int]
    polygon: tuple[tuple[int, int], ...] | None = None
    mask: bool = False

    @property
    def size(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return x1 - x0, y1 - y0

    def cut(self, page: torch.Tensor, name: str) -> torch.Tensor:
        """The region of uint8 pixels `(3, height, width)`; the box must lie on the page."""
        x0, y0, x1, y1 = self.box
        height, width = page.shape[1:]
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height or x1 <= x0 or y1 <= y0:
            raise BadSampleError(f"region box {self.box} is not inside the {width}x{height} page {name}")
        part = page[:, y0:y1, x0:x1]
        if not self.mask or not self.polygon:
            return part
        outline = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(outline).polygon([(x - x0, y - y0) for x, y in self.polygon], fill=1)
        inside = torch.from_numpy(np.asarray(outline, dtype=bool))
        return torch.where(inside, part, torch.full_like(part, WHITE))


def bounding_box(points: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return min(xs), min(ys), max(xs) + 1, max(ys) + 1
