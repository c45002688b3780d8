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
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buffer, pos, byte_cursor, eof = "", 0, 0, False

    def fill() -> bool:
        nonlocal buffer, pos, eof
        if eof:
            return False
        chunk = handle.read(CHUNK_BYTES)
        eof = not chunk
        try:
            text = utf8.decode(chunk, final=eof)
        except UnicodeDecodeError as error:
            raise AnnotationFileError(f"{path}: not UTF-8 near byte {byte_cursor + error.start}") from error
        if not text:
            return not eof
        buffer, pos = buffer[pos:] + text, 0
        return True

    def advance(new_pos: int) -> None:
        nonlocal pos, byte_cursor
        byte_cursor += len(buffer[pos:new_pos].encode("utf-8"))
        pos = new_pos

    def skip_whitespace() -> str:
        while True:
            advance(_SKIP.match(buffer, pos).end())
            if pos < len(buffer) or not fill():
                return buffer[pos : pos + 1]

    def fail(message: str, at: int | None = None) -> AnnotationFileError:
        error_byte = byte_cursor + len(buffer[pos:at].encode("utf-8")) if at is not None else byte_cursor
        line, column = _line_and_column(path, error_byte)
        return AnnotationFileError(f"{path}: not valid JSON at line {line} column {column}: {message}")

    fill()
    if skip_whitespace() != "[":
        raise fail("expected a JSON list of records")
    advance(pos + 1)
    expect_value = True
    while True:
        char = skip_whitespace()
        if char == "]":
            advance(pos + 1)
            if skip_whitespace():
                raise fail("unexpected text after the closing ']'")
            return
        if not char:
            raise fail("the file ends before the closing ']'")
        if not expect_value:
            if char != ",":
                raise fail(f"expected ',' or ']' between records, found {char!r}")
            advance(pos + 1)
            expect_value = True
            continue
        while True:
            try:
                obj, end = decoder.raw_decode(buffer, pos)
                break
            except json.JSONDecodeError as error:
                if not fill():
                    raise fail(error.msg, at=error.pos) from error
        start = byte_cursor
        advance(end)
        yield start, byte_cursor - start, obj, None
        expect_value = False


def _line_and_column(path: Path, byte_offset: int) -> tuple[int, int]:
    with open(path, "rb") as handle:
        prefix = handle.read(byte_offset)
    line = prefix.count(b"\n") + 1
    column = len(prefix) - (prefix.rfind(b"\n") + 1) + 1
    return line, column
