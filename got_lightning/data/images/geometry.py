"""Image geometry read from a model's config: tile size and image tokens per tile."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from got_lightning.core.errors import SettingError

REAL_GOT_IMAGE_SIZE = 1024
# Patch 16, then two stride-2 convolutions: one token per 64x64 pixels.
PIXELS_PER_TOKEN_SIDE = 64


@dataclass(frozen=True)
class ImageGeometry:
    """Tile side in pixels and the image tokens one tile becomes."""

    image_size: int = REAL_GOT_IMAGE_SIZE

    def __post_init__(self) -> None:
        if self.image_size <= 0 or self.image_size % PIXELS_PER_TOKEN_SIDE:
            raise SettingError(f"image_size must be a positive multiple of {PIXELS_PER_TOKEN_SIDE}, got {self.image_size}")

    @property
    def tokens_per_tile(self) -> int:
        return (self.image_size // PIXELS_PER_TOKEN_SIDE) ** 2

    @classmethod
    def from_model_dir(cls, model_dir: str | Path | None) -> ImageGeometry:
        """Geometry of a transformers-format model directory; the real GOT's without one."""
        if model_dir is None:
            return cls()
        config_file = Path(model_dir) / "config.json"
        if not config_file.is_file():
            return cls()
        config = json.loads(config_file.read_text(encoding="utf-8"))
        image_size = config.get("vision_config", {}).get("image_size", REAL_GOT_IMAGE_SIZE)
        if isinstance(image_size, (list, tuple)):
            image_size = image_size[0]
        return cls(int(image_size))
