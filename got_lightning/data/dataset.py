"""Map-style dataset over indexed annotation records; images are decoded only in `__getitem__`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from got_lightning.core.errors import UserError
from got_lightning.data.annotations.formats import index_records
from got_lightning.data.annotations.index import RecordIndex
from got_lightning.data.annotations.records import image_of, parse_record
from got_lightning.data.config import DatasetSpec
from got_lightning.data.errors import BadSampleError, Problem
from got_lightning.data.images.augment import ScanAugmentation
from got_lightning.data.sample import SampleBuilder

log = logging.getLogger(__name__)


@dataclass
class AnnotationSource:
    """One dataset's indexed records with the folder its image paths are relative to."""

    index: RecordIndex
    image_root: Path

    @property
    def name(self) -> str:
        return self.index.dataset


@dataclass(frozen=True)
class IndexedDataset:
    """A configured dataset's annotation files, indexed: the training file and, when the dataset has
    one, its held-out file."""

    spec: DatasetSpec
    train: AnnotationSource
    held_out: AnnotationSource | None

    @property
    def sources(self) -> list[AnnotationSource]:
        return [self.train] if self.held_out is None else [self.train, self.held_out]

    @property
    def problems(self) -> list[Problem]:
        return [problem for source in self.sources for problem in source.index.problems]


def index_datasets(specs: list[DatasetSpec]) -> list[IndexedDataset]:
    """Index every dataset's annotation files (a held-out file under the name `NAME/val`)."""
    indexed = []
    for spec in specs:
        held_out = None
        if spec.val_annotations:
            held_out = AnnotationSource(
                index_records(spec, spec.val_annotations, f"{spec.name}/val", spec.val_root), spec.val_root
            )
        train = AnnotationSource(index_records(spec, spec.annotations, spec.name, spec.root), spec.root)
        indexed.append(IndexedDataset(spec, train, held_out))
    return indexed


class StrictModeError(UserError, RuntimeError):
    """A bad sample met with `strict: true`."""


def source_entries(source_id: int, positions: np.ndarray) -> np.ndarray:
    """A `GotDataset`'s `(source, record position)` rows for records of one source, in order."""
    positions = np.asarray(positions, dtype=np.int64)
    return np.stack([np.full(len(positions), source_id, dtype=np.int64), positions], axis=1)


class GotDataset(Dataset):
    """Items are `(source, record position)` pairs; a bad one comes back as `{"problem": Problem}`
    (dropped by the collator and counted) or, in strict mode, raises. With an `augmentation`, an
    item asked for as `(item, epoch)` is augmented for that epoch (the training sampler asks so)."""

    def __init__(
        self,
        sources: list[AnnotationSource],
        entries: np.ndarray,
        builder: SampleBuilder,
        strict: bool = False,
        augmentation: ScanAugmentation | None = None,
    ) -> None:
        self.sources = sources
        self.entries = np.asarray(entries, dtype=np.int64).reshape(-1, 2)
        self.builder = builder
        self.strict = strict
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.entries)

    def locate(self, item: int) -> tuple[AnnotationSource, int]:
        source_id, position = self.entries[item]
        return self.sources[int(source_id)], int(position)

    def build(self, item: int, pixels: bool = True, epoch: int | None = None) -> dict | Problem:
        """The sample for an item (without pixel values when `pixels` is False; augmented for
        `epoch` when the dataset augments), or the problem that keeps it from being one."""
        source, position = self.locate(item)
        augment = None
        if self.augmentation is not None and epoch is not None:
            augment = self.augmentation.for_sample(epoch, source.name, position)
        raw = None
        try:
            raw = source.index.read(position)
            record, images = parse_record(raw), source.index.images(position)
            if images is None:
                sample = self.builder.build(record, source.image_root, pixels, augment)
            else:
                sample = self.builder.build_resolved(record, images, pixels, augment)
        except BadSampleError as error:
            return error.problem(source.name, position, image_of(raw))
        sample["key"] = (source.name, position)
        return sample

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        item, epoch = item if isinstance(item, tuple) else (item, None)
        sample = self.build(item, epoch=epoch)
        if isinstance(sample, Problem):
            if self.strict:
                raise StrictModeError(f"{sample} (strict: true)")
            log.warning("skipping bad sample: %s", sample)
            return {"problem": sample}
        return sample
