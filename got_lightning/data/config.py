"""Dataset registration in config: no source edits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from got_lightning.core.errors import SettingError
from got_lightning.data.synthetic import SyntheticSpec

DatasetFormat = Literal["auto", "got", "messages", "sharegpt", "parquet", "hf", "datasets", "pagexml", "alto", "lines", "litdata"]
DATASET_FORMATS: tuple[str, ...] = (
    "got",
    "messages",
    "sharegpt",
    "parquet",
    "hf",
    "datasets",
    "pagexml",
    "alto",
    "lines",
    "litdata",
)


@dataclass
class DatasetSpec:
    """One dataset of the `data.datasets` list.

    Args:
        name: Name used in logs and error reports.
        annotations: The records: a file or folder in one of the formats of `format` (a dataset id for `hf`).
        image_root: Folder the records' image paths are relative to (default: the annotation file's folder).
        repeat: How many times each record is seen per epoch (a fraction picks a fixed share).
        val_fraction: Share held out for validation, by image hash (default: `data.val_fraction`).
        val_annotations: A separate validation file instead of a held-out share.
        val_image_root: Image folder of `val_annotations` (default: `image_root`).
        synthetic: Render the dataset into `annotations`' folder first if the file is missing.
        format: How the records are written: `auto` (from the extension and the first record),
            `got`, `messages` (ms-swift / OpenAI JSONL), `sharegpt` (LLaMA-Factory), `parquet`,
            `hf` or `datasets` (a `save_to_disk` folder or a Hugging Face dataset id), `pagexml`, `alto`,
            `lines` (line images with `.gt.txt`) or `litdata` (a split packed by `got-lightning data pack`,
            in a folder or under an `s3://bucket/prefix`).
        keep_system: `messages`/`sharegpt`: a system message replaces GOT's system prompt
            (otherwise it is ignored, and counted).
        dataset_info: `sharegpt`: LLaMA-Factory's `dataset_info.json`, whose entry for this file
            (by `file_name`, else by the dataset's name) names the keys (`columns`, `tags`).
        image_column: `parquet`/`hf`: the column holding the image (bytes, a path, or the
            `datasets` Image feature).
        text_column: `parquet`/`hf`: the column holding the transcription.
        prompt_column: `parquet`/`hf`: a column holding each record's question (default: `prompt`).
        prompt: The human turn of formats without one (`<image>` is put first if it is missing).
        split: `hf`: the split to read.
        revision: `hf` with a dataset id: branch, tag or commit.
        level: `pagexml`/`alto`: one record per `page`, per `region` (text block) or per `line`,
            cropped to the element's box.
        mask_outside_polygon: `pagexml`/`alto` regions and lines: paint white outside the
            element's polygon inside its box.
    """

    name: str
    annotations: str
    image_root: str | None = None
    repeat: float = 1.0
    val_fraction: float | None = None
    val_annotations: str | None = None
    val_image_root: str | None = None
    synthetic: SyntheticSpec | None = None
    format: DatasetFormat = "auto"
    keep_system: bool = False
    dataset_info: str | None = None
    image_column: str = "image"
    text_column: str = "text"
    prompt_column: str | None = None
    prompt: str = "<image>\nOCR: "
    split: str = "train"
    revision: str = "main"
    level: Literal["page", "region", "line"] = "page"
    mask_outside_polygon: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.synthetic, dict):
            self.synthetic = SyntheticSpec(**self.synthetic)
        if self.repeat < 0:
            raise SettingError(f"dataset {self.name!r}: repeat must be >= 0, got {self.repeat}")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise SettingError(f"dataset {self.name!r}: val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.format not in ("auto", *DATASET_FORMATS):
            raise SettingError(
                f"dataset {self.name!r}: format must be auto or one of {', '.join(DATASET_FORMATS)}, got {self.format!r}"
            )
        if self.level not in ("page", "region", "line"):
            raise SettingError(f"dataset {self.name!r}: level must be page, region or line, got {self.level!r}")

    @property
    def question(self) -> str:
        """The human turn of formats without one: `prompt`, with `<image>` first if it lacks one."""
        return self.prompt if "<image>" in self.prompt else f"<image>\n{self.prompt}"

    @property
    def root(self) -> Path:
        """Where relative image paths start: `image_root`, else the annotation file's folder (a
        folder dataset's own folder)."""
        if self.image_root:
            return Path(self.image_root)
        path = Path(self.annotations)
        return path if path.is_dir() else path.parent

    @property
    def val_root(self) -> Path:
        if self.val_image_root:
            return Path(self.val_image_root)
        if self.image_root:
            return self.root
        path = Path(self.val_annotations or self.annotations)
        return path if path.is_dir() else path.parent
