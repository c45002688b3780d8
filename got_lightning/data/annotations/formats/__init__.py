"""Datasets in the formats OCR users already have, all indexed into the same `RecordIndex`: GOT's
conversation JSON, ms-swift `messages`, LLaMA-Factory `sharegpt`, Parquet and Hugging Face
datasets, PAGE-XML and ALTO, and line images with `.gt.txt` files. `format: auto` tells them apart
by the path and the first record, and every message names the format it read."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from got_lightning.data.annotations.formats.conversations import ShareGptKeys, messages_to_got, sharegpt_to_got
from got_lightning.data.annotations.formats.line_images import index_line_images, transcription_of
from got_lightning.data.annotations.formats.shards import index_shards, is_packed
from got_lightning.data.annotations.formats.tables import TableColumns, index_table, is_dataset_id, table_files
from got_lightning.data.annotations.formats.xml_pages import index_xml_pages
from got_lightning.data.annotations.index import RecordIndex, build_index
from got_lightning.data.config import DatasetSpec
from got_lightning.data.errors import AnnotationFileError
from got_lightning.data.images.decode import IMAGE_SUFFIXES


def index_records(spec: DatasetSpec, annotations: str, dataset: str, image_root: Path) -> RecordIndex:
    """Index one annotation source of a dataset in its format (`spec.format`, or detected)."""
    kind = spec.format if spec.format != "auto" else detect_format(annotations, dataset)
    if kind == "got":
        return build_index(annotations, dataset)
    if kind == "messages":
        return build_index(annotations, dataset, functools.partial(messages_to_got, keep_system=spec.keep_system))
    if kind == "sharegpt":
        keys = ShareGptKeys()
        info = spec.dataset_info or _dataset_info_beside(Path(annotations))
        if info:
            keys = ShareGptKeys.from_dataset_info(info, Path(annotations).name, spec.name)
        return build_index(annotations, dataset, functools.partial(sharegpt_to_got, keys=keys, keep_system=spec.keep_system))
    if kind == "litdata":
        return index_shards(annotations, dataset)
    if kind in ("parquet", "hf", "datasets"):
        columns = TableColumns(spec.image_column, spec.text_column, spec.prompt_column, spec.question)
        return index_table(table_files(annotations, spec.split, spec.revision, dataset), dataset, columns)
    folder = _existing(annotations, dataset, kind)
    if kind in ("pagexml", "alto"):
        root = Path(spec.image_root) if spec.image_root else None
        return index_xml_pages(folder, dataset, kind, spec.level, spec.question, root, spec.mask_outside_polygon)
    return index_line_images(folder, dataset, spec.question)


def _existing(annotations: str, dataset: str, kind: str) -> Path:
    path = Path(annotations)
    if not path.exists():
        raise AnnotationFileError(f"dataset {dataset!r} ({kind}): {annotations} does not exist")
    return path


def detect_format(annotations: str, dataset: str) -> str:
    """The format of an annotation path: by its kind (file, folder, hub id), extension and first record."""
    path = Path(annotations)
    if is_packed(annotations):
        return "litdata"
    if not path.exists():
        if is_dataset_id(annotations):
            return "hf"
        raise AnnotationFileError(f"dataset {dataset!r}: annotation file {annotations} does not exist")
    if path.is_dir():
        return _folder_format(path, dataset)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".xml":
        return _xml_format(path)
    return _record_format(path, dataset)


def _folder_format(path: Path, dataset: str) -> str:
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return "hf"
    xml = next(iter(sorted(path.rglob("*.xml"))), None)
    if xml is not None:
        return _xml_format(xml)
    if any(path.rglob("*.parquet")):
        return "parquet"
    images = (p for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES)
    if any(transcription_of(image) is not None for image in images):
        return "lines"
    raise AnnotationFileError(
        f"dataset {dataset!r}: cannot tell the format of folder {path} (no PAGE-XML/ALTO *.xml, Parquet, "
        "save_to_disk folder or images with .gt.txt files); set format:"
    )


def _xml_format(path: Path) -> str:
    head = path.read_bytes()[:4096].decode("utf-8", errors="ignore")
    return "alto" if "<alto" in head or "alto/ns" in head.lower() else "pagexml"


def _dataset_info_beside(path: Path) -> Path | None:
    """LLaMA-Factory's `dataset_info.json` in the file's folder, when it has an entry for the file."""
    info = path.parent / "dataset_info.json"
    try:
        entries = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
    except (OSError, ValueError):
        return None
    named = isinstance(entries, dict) and any(isinstance(e, dict) and e.get("file_name") == path.name for e in entries.values())
    return info if named else None


def _record_format(path: Path, dataset: str) -> str:
    """GOT, messages or sharegpt, from the keys of the file's first record (or from a
    `dataset_info.json` beside it that lists the file)."""
    if _dataset_info_beside(path) is not None:
        return "sharegpt"
    with open(path, "rb") as handle:
        head = handle.read(1 << 16).decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    first = head.lstrip("[ \t\r\n")
    try:
        record, _ = json.JSONDecoder().raw_decode(first)
    except ValueError:
        return "got"  # the index names the bad record
    if not isinstance(record, dict):
        return "got"
    if "messages" in record:
        return "messages"
    if "conversations" in record and "image" not in record:
        return "sharegpt"
    return "got"
