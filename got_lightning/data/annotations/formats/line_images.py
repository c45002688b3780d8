"""Line images with their transcription beside them (`NAME.gt.txt`, else `NAME.txt`): the
Tesseract, kraken and Calamari convention."""

from __future__ import annotations

from pathlib import Path

from got_lightning.data.annotations.index import MemoryIndex
from got_lightning.data.images.decode import IMAGE_SUFFIXES

TEXT_SUFFIXES = (".gt.txt", ".txt")


def transcription_of(image: Path) -> Path | None:
    stem = image.name[: -len(image.suffix)]
    for suffix in TEXT_SUFFIXES:
        candidate = image.with_name(stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def index_line_images(folder: Path, dataset: str, question: str) -> MemoryIndex:
    """Every image under `folder` (sorted by path) with a transcription file; the text is the
    file's content without its final newline. An image without one is a bad record."""
    items = []
    for image in sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()):
        ref = image.relative_to(folder).as_posix()
        text_file = transcription_of(image)
        if text_file is None:
            items.append(({"image": ref}, None, f"no transcription beside {image} ({' or '.join(TEXT_SUFFIXES)})"))
            continue
        try:
            text = text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            items.append(({"image": ref}, None, f"cannot read {text_file}: {error}"))
            continue
        text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
        record = {"image": ref, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": text}]}
        items.append((record, None, None))
    return MemoryIndex.of(folder, dataset, items)
