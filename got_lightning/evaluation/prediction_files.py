"""The files of a `predict` run that a rerun continues: `predictions.jsonl` (one line per input), a
part file per process while several write, and the settings that produced them.

A line is never half-read: a torn last line (a process killed mid-write) is cut off before the file
is appended to, and ignored when read. Lines are keyed by the input they answer: the record position
of an annotation file, or the image path of a folder or list."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from got_lightning.core.atomic_files import atomic_write_text
from got_lightning.core.errors import SettingError

InputKey = str | int


class PredictSettingsError(SettingError):
    """A rerun whose model, checkpoint, input or generation settings differ from the run that wrote
    the existing predictions."""


def line_key(line: dict[str, Any]) -> InputKey:
    return line["position"] if "position" in line else line["image"]


def read_complete_lines(path: Path) -> list[dict[str, Any]]:
    """Every whole JSON line of a file (none if it does not exist); a torn last line is skipped."""
    if not path.is_file():
        return []
    lines = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for text in handle:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict) and ("image" in line or "position" in line):
                lines.append(line)
    return lines


def open_for_append(path: Path) -> IO[str]:
    """Open a JSONL file for appending, first cutting a torn last line (or ending a whole one that
    lost only its newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size:
        with open(path, "rb+") as handle:
            data = handle.read()
            if not data.endswith(b"\n"):
                start = data.rfind(b"\n") + 1
                try:
                    json.loads(data[start:])
                    handle.write(b"\n")
                except ValueError:
                    handle.truncate(start)
    return open(path, "a", encoding="utf-8")


class PredictionFiles:
    """`path` (the final `predictions.jsonl`), its part files and its settings file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.parts = self.path.parent / f".{self.path.name}.parts"
        self.settings_path = self.path.with_name(f"{self.path.stem}.run.json")

    def part(self, rank: int) -> Path:
        return self.parts / f"rank-{rank}.jsonl"

    def files(self) -> list[Path]:
        parts = sorted(self.parts.glob("rank-*.jsonl")) if self.parts.is_dir() else []
        return [self.path, *parts]

    def lines(self) -> list[dict[str, Any]]:
        """The whole lines of the final file and of every part file, each input once: an answer
        wins over an error line for the same input, else the first line written."""
        chosen: dict[InputKey, dict[str, Any]] = {}
        for path in self.files():
            for line in read_complete_lines(path):
                key = line_key(line)
                if key not in chosen or ("error" in chosen[key] and "error" not in line):
                    chosen[key] = line
        return list(chosen.values())

    def done(self, retry_errors: bool = False) -> set[InputKey]:
        """The inputs already answered (error lines too, unless `retry_errors`)."""
        return {line_key(line) for line in self.lines() if not (retry_errors and "error" in line)}

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse to continue predictions written with other settings."""
        if not self.settings_path.is_file() or not any(path.is_file() for path in self.files()):
            return
        previous = json.loads(self.settings_path.read_text(encoding="utf-8"))
        changed = sorted(key for key in settings.keys() | previous.keys() if settings.get(key) != previous.get(key))
        if changed:
            details = ", ".join(f"{key}: {previous.get(key)!r} -> {settings.get(key)!r}" for key in changed)
            raise PredictSettingsError(
                f"{self.path} holds predictions made with other settings ({details}); "
                "write elsewhere (--predict_output.path) or start over (--predict_output.overwrite true)"
            )

    def write_settings(self, settings: dict[str, Any]) -> None:
        atomic_write_text(self.settings_path, json.dumps(settings, ensure_ascii=False, indent=2) + "\n")

    def clear(self) -> None:
        """Remove the predictions, parts and settings of an earlier run."""
        self.path.unlink(missing_ok=True)
        self.settings_path.unlink(missing_ok=True)
        shutil.rmtree(self.parts, ignore_errors=True)

    def merge(self, order: Iterable[InputKey] | None) -> int:
        """Rewrite the final file with every input's line once, in input order (inputs no longer
        among `order` after them, as they were), then drop the part files. Returns the line count."""
        lines = self.lines()
        if order is not None:
            rank = {key: position for position, key in enumerate(order)}
            lines.sort(key=lambda line: rank.get(line_key(line), len(rank)))
        atomic_write_text(self.path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        shutil.rmtree(self.parts, ignore_errors=True)
        return len(lines)


def durable_flush(handle: IO[str]) -> None:
    """Lines written so far survive a crash of this process or of the machine."""
    handle.flush()
    os.fsync(handle.fileno())
