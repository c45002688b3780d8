"""Packed shards (`format: litdata`): a split written by `got-lightning data pack` as litdata chunks
(Lightning's streaming format), each item one record's conversation and its encoded image files,
in a local folder or under an S3 prefix. The records themselves, without images, sit beside the
chunks in `got-records.jsonl`, which is what the index reads; an item's images are read from its
chunk, which is fetched from S3 into a local cache the first time one of its items is asked for.

So a packed split is read like any other dataset: the same split by image hash, shuffle per
(seed, epoch), sharding by rank, exact mid-epoch resume, mixing and weights. litdata's own remote
random access gave empty items in 0.2.76 (measured), hence the chunks are fetched with boto3, and
litdata reads them locally.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from got_lightning.core.optional import require
from got_lightning.data.annotations.index import RecordIndex, build_index
from got_lightning.data.errors import AnnotationFileError, BadSampleError
from got_lightning.data.images.decode import EncodedImage
from got_lightning.data.sample import ResolvedImage

RECORDS_FILE = "got-records.jsonl"
CHUNK_INDEX = "index.json"
BYTES_KEY = "image_bytes"  # each image's length in the item's blob, in the record's order


def is_remote(location: str) -> bool:
    return location.startswith("s3://")


def is_packed(location: str) -> bool:
    """A packed split: an S3 prefix, or a folder holding the records file and litdata's index."""
    return is_remote(location) or ((Path(location) / RECORDS_FILE).is_file() and (Path(location) / CHUNK_INDEX).is_file())


def s3_client() -> Any:
    """boto3's S3 client, configured by the usual `AWS_*` variables (`AWS_ENDPOINT_URL` included)."""
    return require("boto3", "format: litdata on S3").client("s3")


def split_s3(location: str) -> tuple[str, str]:
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    return bucket, prefix.rstrip("/")


def shards_cache(location: str) -> Path:
    from got_lightning.model.hub import converted_cache

    return converted_cache() / "shards" / hashlib.sha256(location.encode()).hexdigest()[:20]


class ChunkStore:
    """Items of a packed split by position: litdata reads a local folder; an S3 prefix's chunks are
    downloaded into the cache (whole, then renamed into place) as their items are asked for."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.folder = shards_cache(location) if is_remote(location) else Path(location)
        if is_remote(location):
            self._fetch(CHUNK_INDEX)
        chunks = json.loads((self.folder / CHUNK_INDEX).read_text(encoding="utf-8"))["chunks"]
        self.chunk_files = [chunk["filename"] for chunk in chunks]
        self.chunk_starts = np.cumsum([0] + [chunk["chunk_size"] for chunk in chunks])
        self._reader: Any = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.chunk_starts[-1])

    def item(self, position: int) -> dict[str, Any]:
        if is_remote(self.location):
            chunk = int(np.searchsorted(self.chunk_starts, position, side="right") - 1)
            if not (self.folder / self.chunk_files[chunk]).is_file():
                self._fetch(self.chunk_files[chunk])
        if self._reader is None or self._pid != os.getpid():  # one reader per process (loader workers)
            self._reader = require("litdata", "format: litdata").StreamingDataset(str(self.folder))
            self._pid = os.getpid()
        return self._reader[position]

    def _fetch(self, name: str) -> None:
        bucket, prefix = split_s3(self.location)
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.")
        os.close(handle)
        try:
            s3_client().download_file(bucket, f"{prefix}/{name}", staging)
        except Exception as error:
            os.unlink(staging)
            raise AnnotationFileError(f"{self.location}/{name} cannot be read: {error}") from error
        os.replace(staging, self.folder / name)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_reader": None, "_pid": None}


@dataclass
class ShardIndex(RecordIndex):
    """The records of a packed split, with their images read from its chunks."""

    records: RecordIndex | None = None
    store: ChunkStore | None = None

    def read(self, position: int) -> Any:
        return self.records.read(position)

    def images(self, position: int) -> list[ResolvedImage] | None:
        item = self.store.item(position)
        record = json.loads(item["record"])
        blob = bytes(item["blob"])  # a memoryview inside loader workers
        refs = record["image"] if isinstance(record["image"], list) else [record["image"]]
        offsets = np.cumsum([0, *record[BYTES_KEY]])
        if len(refs) != len(record[BYTES_KEY]) or offsets[-1] != len(blob):
            raise BadSampleError(f"packed item {position} of {self.store.location} is damaged (its images do not add up)")
        return [
            ResolvedImage(ref, (EncodedImage(ref, blob[start:end]),)) for ref, start, end in zip(refs, offsets[:-1], offsets[1:])
        ]


def index_shards(location: str, dataset: str) -> ShardIndex:
    """Index a packed split: its records file (fetched first from S3), and its chunks."""
    location = location.rstrip("/")
    store = ChunkStore(location)
    if is_remote(location):
        store._fetch(RECORDS_FILE)
    elif not is_packed(location):
        raise AnnotationFileError(f"dataset {dataset!r} (litdata): {location} holds no packed split (got-lightning data pack)")
    records = build_index(store.folder / RECORDS_FILE, dataset)
    if len(records) != len(store):
        raise AnnotationFileError(f"dataset {dataset!r}: {location} has {len(records)} records but {len(store)} packed items")
    return ShardIndex(
        path=Path(location) if not is_remote(location) else store.folder / RECORDS_FILE,
        dataset=dataset,
        split_points=records.split_points,
        answer_chars=records.answer_chars,
        problems=records.problems,
        notes=records.notes,
        records=records,
        store=store,
    )


@dataclass
class ShardWriter:
    """Writes records and their encoded images as litdata chunks in order, then the records file;
    an S3 target is written in a local staging folder and uploaded when complete."""

    output: str
    chunk_mb: float = 64.0
    written: int = 0
    source_bytes: int = 0
    _staging: Path = field(init=False)
    _writer: Any = field(init=False)
    _records: Any = field(init=False)

    def __post_init__(self) -> None:
        self._staging = Path(tempfile.mkdtemp(prefix="got-pack-")) if is_remote(self.output) else Path(self.output)
        if not is_remote(self.output) and self._staging.exists() and any(self._staging.iterdir()):
            raise AnnotationFileError(f"{self.output} is not empty: pack into a new folder")
        self._staging.mkdir(parents=True, exist_ok=True)
        writer = require("litdata.streaming.writer", "got-lightning data pack")
        self._writer = writer.BinaryWriter(str(self._staging), chunk_bytes=int(self.chunk_mb * 2**20))
        self._records = (self._staging / RECORDS_FILE).open("w", encoding="utf-8")

    def add(self, record: dict[str, Any], images: list[bytes]) -> None:
        record = {**record, BYTES_KEY: [len(data) for data in images]}
        line = json.dumps(record, ensure_ascii=False)
        self._writer.add_item(self.written, {"record": line, "blob": b"".join(images)})
        self._records.write(line + "\n")
        self.written += 1
        self.source_bytes += sum(len(data) for data in images)

    def finish(self) -> int:
        """Close the chunks; upload them to S3 when the target is there. The packed bytes."""
        self._writer.done()
        self._writer.merge(num_workers=1)
        self._records.close()
        size = sum(path.stat().st_size for path in self._staging.iterdir())
        if is_remote(self.output):
            bucket, prefix = split_s3(self.output)
            client = s3_client()
            for path in sorted(self._staging.iterdir()):
                client.upload_file(str(path), bucket, f"{prefix}/{path.name}")
            shutil.rmtree(self._staging)
        return size
