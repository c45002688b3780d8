"""One record plus its image files to model inputs: prompt ids, labels and pixel tiles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from got_lightning.data.annotations.records import GPT, Record
from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.decode import ImageFile, open_image, oriented_size, resolve_image_path, split_page, tile_files
from got_lightning.data.images.pixels import PageAugment, PageProcessor
from got_lightning.data.images.regions import Region
from got_lightning.data.prompt import PromptBuilder

T = TypeVar("T")


@dataclass(frozen=True)
class ResolvedImage:
    """An image reference resolved to files: one page, or a folder of pre-cut tiles."""

    ref: str
    files: tuple[ImageFile, ...]
    is_tile_folder: bool = False
    frame: int | None = None
    """The page of a multi-page file (`scan.tif#2`: 1); None: not asked, the first."""
    region: Region | None = None
    """The part of the page to read (a PAGE-XML or ALTO region or line)."""


class SampleBuilder:
    """Resolves, counts, tokenizes, then decodes: over-length samples fail before any pixel decode."""

    def __init__(self, pages: PageProcessor, prompts: PromptBuilder, allow_outside_root: bool = False) -> None:
        self.pages = pages
        self.prompts = prompts
        self.allow_outside_root = allow_outside_root

    def resolve(self, record: Record, image_root: Path) -> list[ResolvedImage]:
        sources = []
        for ref in record.images:
            file, frame = split_page(ref)
            if frame is not None and not (image_root / ref).exists():
                sources.append(ResolvedImage(ref, (resolve_image_path(image_root, file, self.allow_outside_root),), frame=frame))
                continue
            path = resolve_image_path(image_root, ref, self.allow_outside_root)
            if path.is_dir():
                sources.append(ResolvedImage(ref, tuple(tile_files(path)), True))
            else:
                sources.append(ResolvedImage(ref, (path,), False))
        return sources

    def page_size(self, source: ResolvedImage) -> tuple[int, int]:
        """Upright (width, height) of a page (of its region), or of the first tile of a tile folder."""
        image = open_image(source.files[0], self.pages.max_pixels, source.frame or 0)
        with image:
            size = oriented_size(image)
        return source.region.size if source.region else size

    def count_tiles(self, source: ResolvedImage, size: tuple[int, int]) -> int:
        return len(source.files) if source.is_tile_folder else self.pages.num_tiles(*size)

    def tiles_per_placeholder(self, record: Record, tiles_per_image: list[int]) -> list[int]:
        if record.placeholders == 1:
            return [sum(tiles_per_image)]
        return tiles_per_image

    def build(self, record: Record, image_root: Path, pixels: bool = True, augment: PageAugment | None = None) -> dict:
        """Model inputs for a record; raises `BadSampleError` naming the image where one is at fault.
        With `pixels=False` every image is still decoded, but no pixel tensor is built; `augment`
        changes each decoded page before it becomes tiles."""
        return self.build_resolved(record, self.resolve(record, image_root), pixels, augment)

    def build_resolved(
        self, record: Record, sources: list[ResolvedImage], pixels: bool = True, augment: PageAugment | None = None
    ) -> dict:
        """`build` for a record whose images are already found (files, or images held in memory)."""
        sizes = [_blaming(source, self.page_size) for source in sources]
        tiles_per_image = [self.count_tiles(source, size) for source, size in zip(sources, sizes)]
        tokens = self.prompts.build(record, self.tiles_per_placeholder(record, tiles_per_image))
        notes: list[str] = []
        if pixels:
            tiles = [tile for source in sources for tile in _blaming(source, lambda found: self._decode(found, augment))]
            pixel_values = tiles[0] if len(tiles) == 1 else torch.cat(tiles)
        else:
            notes = [note for source in sources if (note := _blaming(source, self._verify))]
            pixel_values = None
        answers = [turn.text for turn in record.turns if turn.role == GPT]
        return {
            "input_ids": torch.tensor(tokens.input_ids, dtype=torch.long),
            "labels": torch.tensor(tokens.labels, dtype=torch.long),
            "pixel_values": pixel_values,
            "num_tiles": sum(tiles_per_image) if pixel_values is None else pixel_values.shape[0],
            "images": [source.ref for source in sources],
            "image_paths": [str(source.files[0].parent if source.is_tile_folder else source.files[0]) for source in sources],
            "truncated": tokens.truncated,
            # The text of the last answer in the tokens, as the annotation wrote it (what is scored).
            "answer": answers[tokens.answers_kept - 1] if tokens.answers_kept else "",
            "image_sizes": sizes,
            "grids": [None if source.is_tile_folder else self.pages.grid(*size) for source, size in zip(sources, sizes)],
            "notes": notes,
        }

    def _verify(self, source: ResolvedImage) -> str | None:
        """Decode every file; a note when a multi-page file is read at its first page unasked."""
        pages = [self.pages.verify(path, source.frame or 0) for path in source.files]
        if source.frame is None and pages[0] > 1:
            return f"multi-page image, page 1 of {pages[0]} read (write {source.ref}#2 for the second)"
        return None

    def _decode(self, source: ResolvedImage, augment: PageAugment | None = None) -> list[torch.Tensor]:
        if source.is_tile_folder:
            return [self.pages.single_tile(path, augment) for path in source.files]
        return [self.pages.page_tiles(source.files[0], source.frame or 0, source.region, augment)]


def _blaming(source: ResolvedImage, read: Callable[[ResolvedImage], T]) -> T:
    """`read(source)`, with a `BadSampleError` it raises naming the image at fault."""
    try:
        return read(source)
    except BadSampleError as error:
        raise BadSampleError(error.reason, image=source.ref) from error
