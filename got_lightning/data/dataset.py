"""Map-style dataset over indexed annotation records; images are decoded only in `__getitem__`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from got_lightning.data.errors import BadSampleError, Problem
from got_lightning.data.index import AnnotationIndex
from got_lightning.data.records import image_of, parse_record
from got_lightning.data.sample import SampleBuilder

log = logging.getLogger(__name__)


@dataclass
class Source:
    """One annotation file with the folder its image paths are relative to."""

    index: AnnotationIndex
    image_root: Path

    @property
    def name(self) -> str:
        return self.index.dataset


class StrictModeError(RuntimeError):
    """A bad sample met with `strict: true`."""


class GotDataset(Dataset):
    """Items are `(source, record position)` pairs; a bad one comes back as `{"problem": Problem}`
    (dropped by the collator and counted) or, in strict mode, raises."""

    def __init__(self, sources: list[Source], entries: np.ndarray, builder: SampleBuilder, strict: bool = False) -> None:
        self.sources = sources
        self.entries = np.asarray(entries, dtype=np.int64).reshape(-1, 2)
        self.builder = builder
        self.strict = strict

    def __len__(self) -> int:
        return len(self.entries)

    def locate(self, item: int) -> tuple[Source, int]:
        source_id, position = self.entries[item]
        return self.sources[int(source_id)], int(position)

    def build(self, item: int, pixels: bool = True) -> dict | Problem:
        """The sample for an item (without pixel values when `pixels` is False), or the problem
        that keeps it from being one."""
        source, position = self.locate(item)
        raw = None
        try:
            raw = source.index.read(position)
            sample = self.builder.build(parse_record(raw), source.image_root, pixels)
        except BadSampleError as error:
            return error.problem(source.name, position, image_of(raw))
        sample["key"] = (source.name, position)
        return sample

    def __getitem__(self, item: int) -> dict:
        sample = self.build(item)
        if isinstance(sample, Problem):
            if self.strict:
                raise StrictModeError(f"{sample} (strict: true)")
            log.warning("skipping bad sample: %s", sample)
            return {"problem": sample}
        return sample
