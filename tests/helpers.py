"""Small builders shared by tests: real files written with PIL and json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw


def text_page(path: Path, size: tuple[int, int] = (300, 200), text: str = "12345", **save) -> Path:
    page = Image.new("RGB", size, "white")
    ImageDraw.Draw(page).text((10, 10), text, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, **save)
    return path


def record(image, answer: str = "12345", prompt: str = "<image>\nOCR: ") -> dict:
    return {"image": image, "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]}


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def run_executable(*args: str, timeout: float = 600, **options) -> subprocess.CompletedProcess:
    """`got-lightning ARGS` as a user types it: the console script installed beside this Python."""
    executable = Path(sys.executable).parent / "got-lightning"
    return subprocess.run([str(executable), *args], capture_output=True, text=True, timeout=timeout, **options)
