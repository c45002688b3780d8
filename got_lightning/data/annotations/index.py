"""Indexes of a dataset's records: what every format provides (`RecordIndex`), and the byte-offset
index of a JSON list or JSONL annotation file, whose records are read on demand."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from got_lightning.data.annotations.records import image_of, parse_record
from got_lightning.data.errors import AnnotationFileError, BadSampleError, Problem
from got_lightning.data.sample import ResolvedImage
from got_lightning.data.split import split_point

CHUNK_BYTES = 1 << 22
_WHITESPACE = " \t\r\n"
_SKIP = re.compile("[\ufeff \t\r\n]*")


@dataclass
class RecordIndex:
    """What the split, the sampler and the error reports need of a dataset's records, whatever the
    format they come from, and how to read one record.

    Arrays are indexed by the record's 0-based position. Bad records keep their position (so errors
    name it) with `split_points` NaN; their reasons are in `problems`. `notes` counts what was read
    but left aside without being an error (a system message a format ignores, say).
    """

    path: Path
    dataset: str
    split_points: np.ndarray
    answer_chars: np.ndarray
    problems: list[Problem]
    notes: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.split_points)

    @property
    def valid_positions(self) -> np.ndarray:
        return np.flatnonzero(~np.isnan(self.split_points))

    def read(self, position: int) -> Any:
        """The record at a position, in GOT's conversation form (`image`, `conversations`)."""
        raise NotImplementedError

    def images(self, position: int) -> list[ResolvedImage] | None:
        """The record's images when the format holds them itself (bytes, crops); None when they
        are files named by the record, found from the dataset's image root."""
        return None


class IndexedRecords:
    """Builds a `RecordIndex`'s arrays from records read in order."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.points: list[float] = []
        self.chars: list[int] = []
        self.problems: list[Problem] = []
        self.notes: Counter = Counter()

    def add(self, obj: Any, error: str | None = None, image: str | None = None) -> None:
        """One record (GOT form), or the reason it could not be read."""
        if error is None:
            self.notes.update(obj.pop(NOTES_KEY, ()) if isinstance(obj, dict) else ())
            try:
                record = parse_record(obj)
            except BadSampleError as bad:
                error, image = bad.reason, bad.image or image_of(obj)
            else:
                self.points.append(split_point(record.image_key))
                self.chars.append(record.answer_chars)
                return
        self.problems.append(Problem(self.dataset, len(self.points), image, error))
        self.points.append(float("nan"))
        self.chars.append(0)

    def arrays(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split_points": np.asarray(self.points, dtype=np.float64),
            "answer_chars": np.asarray(self.chars, dtype=np.int32),
            "problems": self.problems,
            "notes": self.notes,
        }


# A converter may leave notes under this key of the record it returns (counted, then dropped).
NOTES_KEY = "_notes"
Converter = Callable[[Any], dict]


@dataclass
class AnnotationIndex(RecordIndex):
    """A JSON list or JSONL file indexed by byte offsets: records are read on demand, through the
    format's converter to GOT's form when it is not GOT's own."""

    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    convert: Converter | None = None
    _handle: tuple[int, BinaryIO] | None = field(default=None, repr=False, compare=False)

    def read(self, position: int) -> Any:
        handle = self._file()
        handle.seek(int(self.offsets[position]))
        obj = json.loads(handle.read(int(self.lengths[position])))
        if self.convert is None:
            return obj
        converted = self.convert(obj)
        converted.pop(NOTES_KEY, None)
        return converted

    def _file(self) -> BinaryIO:
        # A handle opened before a DataLoader worker forked shares its file position: reopen per process.
        pid = os.getpid()
        if self._handle is None or self._handle[0] != pid:
            self._handle = (pid, open(self.path, "rb"))  # noqa: SIM115 - kept open for the process
        return self._handle[1]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = None
        return state


def build_index(path: str | Path, dataset: str, convert: Converter | None = None) -> AnnotationIndex:
    """Scan an annotation file once, validating every record's structure (after `convert`, which
    turns another format's record into GOT's form or raises `BadSampleError`).

    Raises `AnnotationFileError` for a file that is missing or is not a JSON list / JSONL.
    """
    path = Path(path)
    if path.is_dir():
        raise AnnotationFileError(
            f"dataset {dataset!r}: {path} is a folder, not an annotation file (a folder of PAGE-XML, ALTO or line images needs format:)"
        )
    if not path.is_file():
        raise AnnotationFileError(f"dataset {dataset!r}: annotation file {path} does not exist")
    offsets: list[int] = []
    lengths: list[int] = []
    records = IndexedRecords(dataset)
    with open(path, "rb") as handle:
        scan = _scan_json_list if _first_char(handle) == "[" else _scan_jsonl
        for offset, length, obj, error in scan(handle, path):
            offsets.append(offset)
            lengths.append(length)
            if error is None and convert is not None:
                try:
                    obj = convert(obj)
                except BadSampleError as bad:
                    error = bad.reason
                    records.add(None, error, bad.image)
                    continue
            records.add(obj, error)
    return AnnotationIndex(
        path=path,
        **records.arrays(),
        offsets=np.asarray(offsets, dtype=np.int64),
        lengths=np.asarray(lengths, dtype=np.int64),
        convert=convert,
    )


def _first_char(handle: BinaryIO) -> str:
    head = handle.read(4096)
    handle.seek(0)
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff" + _WHITESPACE)
    return text[:1]


ScanItem = tuple[int, int, Any, "str | None"]


def _scan_jsonl(handle: BinaryIO, path: Path) -> Iterator[ScanItem]:
    offset = 0
    for line_number, line in enumerate(handle, start=1):
        start, length = offset, len(line)
        offset += length
        if line_number == 1 and line.startswith(codecs.BOM_UTF8):
            start, length, line = start + 3, length - 3, line[3:]
        if not line.strip():
            continue
        try:
            yield start, length, json.loads(line), None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            yield start, length, None, f"{path.name} line {line_number}: not valid JSON: {error}"


def _scan_json_list(handle: BinaryIO, path: Path) -> Iterator[ScanItem]:
    """Walk the top-level array element by element, never holding more than one chunk plus one record."""
    reader = _JsonListReader(handle, path)
    reader.expect("[", "expected a JSON list of records")
    while (char := reader.peek()) != "]":
        if not char:
            raise reader.fail("the file ends before the closing ']'")
        start, obj = reader.read_value()
        yield start, reader.byte_cursor - start, obj, None
        separator = reader.peek()
        if separator == ",":
            reader.advance(reader.pos + 1)
        elif separator not in ("]", ""):
            raise reader.fail(f"expected ',' or ']' between records, found {separator!r}")
    reader.advance(reader.pos + 1)
    if reader.peek():
        raise reader.fail("unexpected text after the closing ']'")


class _JsonListReader:
    """A decoded window over a JSON file, read forward in chunks, that knows its byte position."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle, self.path = handle, path
        self.decoder = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buffer, self.pos, self.byte_cursor, self.eof = "", 0, 0, False

    def fill(self) -> bool:
        """Append the next chunk; False once the file is exhausted."""
        if self.eof:
            return False
        chunk = self.handle.read(CHUNK_BYTES)
        self.eof = not chunk
        try:
            text = self.utf8.decode(chunk, final=self.eof)
        except UnicodeDecodeError as error:
            raise AnnotationFileError(f"{self.path}: not UTF-8 near byte {self.byte_cursor + error.start}") from error
        if not text:
            return not self.eof
        self.buffer, self.pos = self.buffer[self.pos :] + text, 0
        return True

    def advance(self, new_pos: int) -> None:
        self.byte_cursor += len(self.buffer[self.pos : new_pos].encode("utf-8"))
        self.pos = new_pos

    def peek(self) -> str:
        """The next character after whitespace ('' at the end of the file)."""
        while True:
            self.advance(_SKIP.match(self.buffer, self.pos).end())
            if self.pos < len(self.buffer) or not self.fill():
                return self.buffer[self.pos : self.pos + 1]

    def expect(self, char: str, message: str) -> None:
        if self.peek() != char:
            raise self.fail(message)
        self.advance(self.pos + 1)

    def read_value(self) -> tuple[int, Any]:
        """Decode one JSON value, reading more chunks until it is complete; returns its start byte."""
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buffer, self.pos)
                break
            except json.JSONDecodeError as error:
                if not self.fill():
                    raise self.fail(error.msg, at=error.pos) from error
        start = self.byte_cursor
        self.advance(end)
        return start, obj

    def fail(self, message: str, at: int | None = None) -> AnnotationFileError:
        error_byte = self.byte_cursor + len(self.buffer[self.pos : at].encode("utf-8")) if at is not None else self.byte_cursor
        line, column = _line_and_column(self.path, error_byte)
        return AnnotationFileError(f"{self.path}: not valid JSON at line {line} column {column}: {message}")


def _line_and_column(path: Path, byte_offset: int) -> tuple[int, int]:
    with open(path, "rb") as handle:
        prefix = handle.read(byte_offset)
    line = prefix.count(b"\n") + 1
    column = len(prefix) - (prefix.rfind(b"\n") + 1) + 1
    return line, column


@dataclass
class MemoryIndex(RecordIndex):
    """Records built when the dataset is indexed (XML pages, line images), held in memory with
    their images when the format resolves them itself (crops of a page)."""

    records: list[dict] = field(default_factory=list)
    resolved: list[list[ResolvedImage] | None] = field(default_factory=list)

    @classmethod
    def of(cls, path: Path, dataset: str, items: list[tuple[dict | None, list[ResolvedImage] | None, str | None]]) -> MemoryIndex:
        """From (record in GOT form, its resolved images or None, the reason it is bad or None)."""
        indexed = IndexedRecords(dataset)
        for record, _, error in items:
            indexed.add(dict(record) if record is not None else None, error, image_of(record))
        return cls(
            path=path,
            **indexed.arrays(),
            records=[record or {} for record, _, _ in items],
            resolved=[images for _, images, _ in items],
        )

    def read(self, position: int) -> Any:
        return self.records[position]

    def images(self, position: int) -> list[ResolvedImage] | None:
        return self.resolved[position]
