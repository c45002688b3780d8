"""Convert a folder of page images plus labels into GOT's annotation format (the user story's converter).

Labels per image, found by file stem in --labels (default: the images folder):
  * `<stem>.json`: character boxes `[x1, y1, x2, y2, order, char]`, joined in `order`;
  * `<stem>.txt`: the transcript as it is.

    python tools/build_dataset.py --images raw/images --labels raw/labels --output dataset --val_fraction 0.05 --line_breaks columns
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Literal

from jsonargparse import CLI
from PIL import Image

from got_lightning.data.images.decode import IMAGE_SUFFIXES
from got_lightning.data.split import is_held_out
from got_lightning.data.synthetic import DEFAULT_PROMPT

LineBreaks = Literal["none", "columns", "rows"]


def join_characters(boxes: list, line_breaks: LineBreaks, separator: str = "\n") -> str:
    """Characters in reading order; a separator where the next character starts a new column or row."""
    ordered = sorted(boxes, key=lambda box: box[4])
    text = []
    for previous, box in zip([None, *ordered], ordered):
        if previous is not None and line_breaks != "none" and _starts_new_line(previous, box, line_breaks):
            text.append(separator)
        text.append(str(box[5]))
    return "".join(text)


def _starts_new_line(previous: list, box: list, line_breaks: LineBreaks) -> bool:
    axis = 0 if line_breaks == "columns" else 1
    extent = max(previous[axis + 2] - previous[axis], box[axis + 2] - box[axis])
    return abs(_centre(box, axis) - _centre(previous, axis)) > 0.5 * extent


def _centre(box: list, axis: int) -> float:
    return (box[axis] + box[axis + 2]) / 2


def _transcript(image: Path, labels: Path, line_breaks: LineBreaks) -> str:
    box_file, text_file = labels / f"{image.stem}.json", labels / f"{image.stem}.txt"
    if box_file.is_file():
        boxes = json.loads(box_file.read_text(encoding="utf-8"))
        if not isinstance(boxes, list) or any(not isinstance(b, list) or len(b) < 6 for b in boxes):
            raise ValueError(f"{box_file.name}: expected a list of [x1, y1, x2, y2, order, char]")
        return join_characters(boxes, line_breaks)
    if text_file.is_file():
        return text_file.read_text(encoding="utf-8").strip("\n")
    raise ValueError(f"no label file {box_file.name} or {text_file.name}")


def main(
    images: str,
    output: str,
    labels: str | None = None,
    val_fraction: float = 0.0,
    line_breaks: LineBreaks = "none",
    prompt: str = DEFAULT_PROMPT,
    copy_images: bool = True,
) -> int:
    """Write OUTPUT/images, OUTPUT/data.json and (with val_fraction) OUTPUT/val.json.

    Args:
        images: Folder of page images.
        output: Dataset folder to create.
        labels: Folder of label files (default: the images folder).
        val_fraction: Share of pages held out into val.json, chosen by image-name hash.
        line_breaks: Put a newline between `columns` (vertical text) or `rows`; `none` joins everything.
        prompt: Human turn of every record.
        copy_images: Copy images into OUTPUT/images (false: reference them where they are).
    """
    image_dir, out = Path(images), Path(output)
    label_dir = Path(labels) if labels else image_dir
    (out / "images").mkdir(parents=True, exist_ok=True)
    train, val, skipped = [], [], []
    for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(image) as opened:
                opened.verify()
            text = _transcript(image, label_dir, line_breaks)
        except Exception as error:  # every unreadable image or label is reported, none stops the run
            skipped.append((image.name, str(error) or type(error).__name__))
            continue
        if not text.strip():
            skipped.append((image.name, "empty labels"))
            continue
        if copy_images:
            shutil.copy2(image, out / "images" / image.name)
            ref = f"images/{image.name}"
        else:
            ref = str(image.resolve())
        entry = {"image": ref, "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}]}
        (val if is_held_out(ref, val_fraction) else train).append(entry)
    (out / "data.json").write_text(json.dumps(train, ensure_ascii=False, indent=1), encoding="utf-8")
    if val_fraction > 0:
        (out / "val.json").write_text(json.dumps(val, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(train)} train and {len(val)} val records in {out}; {len(skipped)} image(s) skipped")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    CLI(main, as_positional=False)
