"""Dataset registration in config: no source edits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from got_lightning.data.synthetic import SyntheticSpec


@dataclass
class DatasetSpec:
    """One dataset of the `data.datasets` list.

    Args:
        name: Name used in logs and error reports.
        annotations: JSON list (upstream format) or JSONL file of records.
        image_root: Folder the records' image paths are relative to (default: the annotation file's folder).
        repeat: How many times each record is seen per epoch (a fraction picks a fixed share).
        val_fraction: Share held out for validation, by image hash (default: `data.val_fraction`).
        val_annotations: A separate validation file instead of a held-out share.
        val_image_root: Image folder of `val_annotations` (default: `image_root`).
        synthetic: Render the dataset into `annotations`' folder first if the file is missing.
    """

    name: str
    annotations: str
    image_root: str | None = None
    repeat: float = 1.0
    val_fraction: float | None = None
    val_annotations: str | None = None
    val_image_root: str | None = None
    synthetic: SyntheticSpec | None = None

    def __post_init__(self) -> None:
        if isinstance(self.synthetic, dict):
            self.synthetic = SyntheticSpec(**self.synthetic)
        if self.repeat < 0:
            raise ValueError(f"dataset {self.name!r}: repeat must be >= 0, got {self.repeat}")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise ValueError(f"dataset {self.name!r}: val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def root(self) -> Path:
        return Path(self.image_root) if self.image_root else Path(self.annotations).parent

    @property
    def val_root(self) -> Path:
        if self.val_image_root:
            return Path(self.val_image_root)
        return self.root if self.image_root else Path(self.val_annotations or self.annotations).parent
