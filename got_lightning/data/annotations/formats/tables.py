"""Tables of records: Parquet files, a folder written by `datasets`' `save_to_disk`, or a Hugging
Face dataset id (its Parquet files through the hub's cache). An image cell holds the encoded file
(bytes), a path, or the `datasets` Image feature (`{bytes, path}`); bytes are read straight from
the table for each sample, never written out as files."""

from __future__ import annotations

import itertools
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from got_lightning.core.optional import require
from got_lightning.data.annotations.index import IndexedRecords, RecordIndex
from got_lightning.data.errors import AnnotationFileError, BadSampleError
from got_lightning.data.images.decode import EncodedImage
from got_lightning.data.sample import ResolvedImage
from got_lightning.model.hub import hub_snapshot, is_hub_id

BATCH_ROWS = 8192
HUB_PATTERNS = ["*.parquet", "**/*.parquet", "*.md", "*.json"]


@dataclass(frozen=True)
class TableColumns:
    image: str
    text: str
    prompt: str | None
    question: str


@dataclass
class TableIndex(RecordIndex):
    """Rows of one or more Parquet or Arrow files, read on demand (Arrow memory-mapped; Parquet a
    row group at a time, the last ones kept)."""

    files: list[str] = field(default_factory=list)
    row_starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    columns: TableColumns | None = None
    _reader: _TableReader | None = field(default=None, repr=False, compare=False)

    def read(self, position: int) -> Any:
        row = self._row(position, [self.columns.text, *([self.columns.prompt] if self.columns.prompt else [])])
        image = self._row(position, [self.columns.image])[self.columns.image]
        return _record(position, row, image, self.columns)

    def images(self, position: int) -> list[ResolvedImage] | None:
        cell = self._row(position, [self.columns.image])[self.columns.image]
        data = cell.get("bytes") if isinstance(cell, dict) else cell if isinstance(cell, bytes) else None
        if data is None:
            if isinstance(cell, str) or (isinstance(cell, dict) and cell.get("path")):
                return None  # a path: found from the dataset's image root, as files always are
            raise BadSampleError(f"row {position - int(self.row_starts[0])} of {self.path.name} has no image")
        name = _image_key(position, cell)
        return [ResolvedImage(name, (EncodedImage(name, bytes(data)),))]

    def _row(self, position: int, columns: list[str]) -> dict[str, Any]:
        pid = os.getpid()
        if self._reader is None or self._reader.pid != pid:
            self._reader = _TableReader(self.files, pid)
        file = int(np.searchsorted(self.row_starts, position, side="right") - 1)
        return self._reader.row(file, position - int(self.row_starts[file]), columns)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_reader"] = None
        return state


class _TableReader:
    """Open tables of one process: Arrow files memory-mapped, Parquet row groups cached."""

    CACHED_GROUPS = 4

    def __init__(self, files: list[str], pid: int) -> None:
        self.pa = require("pyarrow", "reading Parquet and Hugging Face datasets")
        import pyarrow.parquet as pq

        self.pq, self.files, self.pid = pq, files, pid
        self.tables: dict[int, Any] = {}
        self.groups: OrderedDict[tuple[int, int, tuple[str, ...]], Any] = OrderedDict()

    def row(self, file: int, row: int, columns: list[str]) -> dict[str, Any]:
        path = self.files[file]
        if path.endswith(".arrow"):
            if file not in self.tables:
                self.tables[file] = _read_arrow(self.pa, path)
            return self.tables[file].select(columns).slice(row, 1).to_pylist()[0]
        parquet = self.tables.setdefault(file, self.pq.ParquetFile(path))
        metadata, group, start = parquet.metadata, 0, 0
        while start + metadata.row_group(group).num_rows <= row:
            start += metadata.row_group(group).num_rows
            group += 1
        key = (file, group, tuple(columns))
        if key not in self.groups:
            self.groups[key] = parquet.read_row_group(group, columns=columns)
            while len(self.groups) > self.CACHED_GROUPS:
                self.groups.popitem(last=False)
        self.groups.move_to_end(key)
        return self.groups[key].slice(row - start, 1).to_pylist()[0]


def _row_batches(pq: Any, path: str, table: Any, wanted: list[str], image: str, with_image: bool, is_struct: bool) -> Any:
    """The rows of a table's text columns (and image names, never bytes) as lists of dicts, a
    batch at a time: a large file is never held in memory whole."""
    if table is None:
        names = [*wanted, f"{image}.path" if is_struct else image] if with_image else wanted
        batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=names)
    else:
        batches = table.to_batches(max_chunksize=BATCH_ROWS)
    for batch in batches:
        rows = {name: batch.column(name).to_pylist() for name in wanted}
        if with_image:
            cells = batch.column(image)
            key = "path" if is_struct else image
            rows[key] = (cells.field("path") if is_struct else cells).to_pylist()
        yield [dict(zip(rows, values)) for values in zip(*rows.values())]


def _read_arrow(pa: Any, path: str) -> Any:
    """An Arrow file `save_to_disk` wrote (IPC stream), memory-mapped."""
    source = pa.memory_map(path)
    try:
        return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_file(source).read_all()


def _image_key(position: int, cell: Any) -> str:
    """What names a row's image (and decides its held-out split): its path, else its row."""
    if isinstance(cell, dict) and cell.get("path"):
        return str(cell["path"])
    if isinstance(cell, str):
        return cell
    return f"row-{position}"


def _record(position: int, row: dict[str, Any], image: Any, columns: TableColumns) -> dict:
    question = row.get(columns.prompt) if columns.prompt else columns.question
    if isinstance(question, str) and "<image>" not in question:
        question = f"<image>\n{question}"
    return {
        "image": _image_key(position, image),
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": row.get(columns.text)}],
    }


_FILE_SUFFIXES = {".json", ".jsonl", ".parquet", ".arrow", ".xml", ".txt"}


def is_dataset_id(annotations: str) -> bool:
    """`org/name` that is no local path and does not look like a missing annotation file."""
    return is_hub_id(annotations) and Path(annotations).suffix.lower() not in _FILE_SUFFIXES


def table_files(annotations: str, split: str, revision: str, dataset: str) -> list[str]:
    """The Parquet or Arrow files of a dataset: a Parquet file, a folder of them (split-named files
    first), a `save_to_disk` folder (a split of a DatasetDict), or a hub dataset id."""
    path = Path(annotations)
    if is_dataset_id(annotations):
        path = hub_snapshot(annotations, revision, HUB_PATTERNS, repo_type="dataset", error_class=AnnotationFileError)
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise AnnotationFileError(f"dataset {dataset!r}: {annotations} is neither a file, a folder nor a dataset id")
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        if split not in splits:
            raise AnnotationFileError(f"dataset {dataset!r}: {path} has splits {splits}, not {split!r} (set split:)")
        path = path / split
    if (path / "state.json").is_file():
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        return [str(path / item["filename"]) for item in state.get("_data_files", [])]
    files = sorted(str(file) for file in path.rglob("*.parquet"))
    named = [
        file for file in files if Path(file).name.startswith(f"{split}-") or f"/{split}/" in file or Path(file).stem == split
    ]
    if not files:
        raise AnnotationFileError(f"dataset {dataset!r}: no Parquet file under {path}")
    return named or files


def index_table(files: list[str], dataset: str, columns: TableColumns) -> TableIndex:
    """Read the text, prompt and image-name columns once (never the image bytes) and validate every row."""
    pa = require("pyarrow", "reading Parquet and Hugging Face datasets")
    import pyarrow.parquet as pq

    records = IndexedRecords(dataset)
    starts = [0]
    for path in files:
        table = _read_arrow(pa, path) if path.endswith(".arrow") else None
        schema = table.schema if table is not None else pq.read_schema(path)
        missing = [name for name in (columns.image, columns.text, columns.prompt) if name and name not in schema.names]
        if missing:
            raise AnnotationFileError(
                f"dataset {dataset!r}: {path} has no column {', '.join(missing)} (it has {', '.join(schema.names)})"
            )
        image_type = schema.field(columns.image).type
        is_struct = pa.types.is_struct(image_type)
        wanted = [columns.text, *([columns.prompt] if columns.prompt else [])]
        batches = _row_batches(pq, path, table, wanted, columns.image, is_struct or pa.types.is_string(image_type), is_struct)
        count = 0
        for count, row in enumerate(itertools.chain.from_iterable(batches), start=1):
            number = count - 1
            if is_struct:
                image = {"path": row.get("path")}
            elif pa.types.is_string(image_type):
                image = row.get(columns.image)
                if not image:
                    records.add(None, f"{Path(path).name} row {number}: no image path")
                    continue
            else:
                image = None  # bytes: checked when the sample is read, as every image is
            records.add(_record(starts[-1] + number, row, image, columns))
        starts.append(starts[-1] + count)
    return TableIndex(
        path=Path(files[0]),
        **records.arrays(),
        files=files,
        row_starts=np.asarray(starts, dtype=np.int64),
        columns=columns,
    )
