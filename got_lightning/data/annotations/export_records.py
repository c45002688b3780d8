"""Records of any format written out as GOT JSONL (or ms-swift `messages`), so that data moves
between tools: image files referenced where they are (relative to the output's folder when inside
it, else by absolute path), images held inside a dataset file and cuts of a page (regions, lines,
pages of a multi-page file) written once into an `images/` folder beside the output."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from got_lightning.data.annotations.records import GPT, HUMAN, Record, parse_record
from got_lightning.data.dataset import GotDataset
from got_lightning.data.errors import BadSampleError, Problem
from got_lightning.data.images.decode import decode_pixels, open_image
from got_lightning.data.sample import ResolvedImage

TargetFormat = Literal["got", "messages"]
_UNSAFE = re.compile(r"[^\w.-]+")


def encoded_image(image: ResolvedImage, max_pixels: int | None) -> tuple[bytes, str]:
    """An image's encoded bytes and their file suffix: a whole file as it is stored, a cut of a page
    (a region, a line, a page of a multi-page file) as a PNG."""
    if image.is_tile_folder:
        raise BadSampleError(f"{image.ref} is a folder of tiles: write it as one image per record to pack or convert it")
    file = image.files[0]
    if image.region is None and image.frame is None:
        return file.read_bytes(), Path(str(file)).suffix or ".png"
    opened = open_image(file, max_pixels, image.frame or 0)
    with opened:
        pixels = decode_pixels(opened, file)
    if image.region is not None:
        pixels = image.region.cut(pixels, str(file))
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue(), ".png"


class RecordWriter:
    """Writes records beside `output`, each image file written out once."""

    def __init__(self, output: Path, max_pixels: int | None, target: TargetFormat = "got") -> None:
        self.output, self.max_pixels, self.target = output, max_pixels, target
        self.images_dir = output.parent / "images"
        self.written: dict[tuple[str, str], str] = {}
        self.outside = 0  # images referenced where they are, outside the output's folder

    def lines(self, dataset: GotDataset, items: list[int]) -> Iterator[str | Problem]:
        """One JSON line per item (or the problem that keeps it out)."""
        for item in items:
            source, position = dataset.locate(item)
            try:
                record = parse_record(source.index.read(position))
                images = source.index.images(position) or dataset.builder.resolve(record, source.image_root)
                refs = [self._ref(source.name, image) for image in images]
            except BadSampleError as error:
                yield error.problem(source.name, position)
                continue
            yield json.dumps(self._record(record, refs), ensure_ascii=False)

    def _ref(self, dataset: str, image: ResolvedImage) -> str:
        file = image.files[0]
        if isinstance(file, Path) and image.region is None and image.frame is None:
            target = (file.parent if image.is_tile_folder else file).resolve()
            base = self.output.parent.resolve()
            if target.is_relative_to(base):
                return target.relative_to(base).as_posix()
            self.outside += 1
            return str(target)
        key = (dataset, f"{image.ref}|{image.frame}|{image.region}")
        if key not in self.written:
            self.written[key] = self._write(dataset, image)
        return self.written[key]

    def _write(self, dataset: str, image: ResolvedImage) -> str:
        stem = _UNSAFE.sub("_", Path(str(image.files[0])).stem)[:80]
        folder = self.images_dir / _UNSAFE.sub("_", dataset)
        folder.mkdir(parents=True, exist_ok=True)
        data, suffix = encoded_image(image, self.max_pixels)
        target = folder / f"{len(self.written):06d}-{stem}{suffix}"
        target.write_bytes(data)
        return target.relative_to(self.output.parent).as_posix()

    def _record(self, record: Record, refs: list[str]) -> dict[str, Any]:
        image: str | list[str] = refs[0] if len(refs) == 1 else refs
        if self.target == "got":
            line: dict[str, Any] = {"image": image, "conversations": [{"from": t.role, "value": t.text} for t in record.turns]}
            if record.system is not None:
                line["system"] = record.system
            return line
        roles = {HUMAN: "user", GPT: "assistant"}
        messages = [{"role": "system", "content": record.system}] if record.system is not None else []
        messages += [{"role": roles[turn.role], "content": turn.text} for turn in record.turns]
        return {"messages": messages, "images": refs}
