"""Byte-offset index of an annotation file (JSON list or JSONL): records are read on demand."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from got_lightning.data.errors import AnnotationFileError, BadSampleError, Problem
from got_lightning.data.records import image_of, parse_record
from got_lightning.data.split import split_point

CHUNK_BYTES = 1 << 22
_WHITESPACE = " \t\r\n"
_SKIP = re.compile("[\ufeff \t\r\n]*")


@dataclass
class AnnotationIndex:
    """Where each record of one annotation file lies, plus what the split and sampler need.

    Arrays are indexed by the record's 0-based position in the file. Bad records keep their
    position (so errors name it) with `split_points` NaN; their reasons are in `problems`.
    """

    path: Path
    dataset: str
    offsets: np.ndarray
    lengths: np.ndarray
    split_points: np.ndarray
    answer_chars: np.ndarray
    problems: list[Problem]
    _handle: tuple[int, BinaryIO] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def valid_positions(self) -> np.ndarray:
        return np.flatnonzero(~np.isnan(self.split_points))

    def read(self, position: int) -> Any:
        """Decode the raw JSON object at a record position."""
        handle = self._file()
        handle.seek(int(self.offsets[position]))
        return json.loads(handle.read(int(self.lengths[position])))

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


def build_index(path: str | Path, dataset: str) -> AnnotationIndex:
    """Scan an annotation file once, validating every record's structure.

    Raises `AnnotationFileError` for a file that is missing or is not a JSON list / JSONL.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationFileError(f"dataset {dataset!r}: annotation file {path} does not exist")
    offsets: list[int] = []
    lengths: list[int] = []
    points: list[float] = []
    chars: list[int] = []
    problems: list[Problem] = []
    with open(path, "rb") as handle:
        scan = _scan_json_list if _first_char(handle) == "[" else _scan_jsonl
        for position, (offset, length, obj, error) in enumerate(scan(handle, path)):
            offsets.append(offset)
            lengths.append(length)
            if error is None:
                try:
                    record = parse_record(obj)
                except BadSampleError as bad:
                    error, image = bad.reason, bad.image or image_of(obj)
                else:
                    points.append(split_point(record.image_key))
                    chars.append(record.answer_chars)
                    continue
            else:
                image = None
            problems.append(Problem(dataset, position, image, error))
            points.append(float("nan"))
            chars.append(0)
    return AnnotationIndex(
        path=path,
        dataset=dataset,
        offsets=np.asarray(offsets, dtype=np.int64),
        lengths=np.asarray(lengths, dtype=np.int64),
        split_points=np.asarray(points, dtype=np.float64),
        answer_chars=np.asarray(chars, dtype=np.int32),
        problems=problems,
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
