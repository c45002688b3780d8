"""Inputs of `got-lightning predict`: a folder of images, a list file or an annotation file, with
GOT's inference prompts (plain or format OCR, optional box or colour)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset

from got_lightning.core.errors import InputFileError, InputNotFoundError, SettingError
from got_lightning.data.annotations.records import GPT, HUMAN, Record, Turn
from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.decode import IMAGE_SUFFIXES
from got_lightning.data.sample import SampleBuilder
from got_lightning.tokens import IMAGE_PLACEHOLDER

OcrType = Literal["ocr", "format"]
COLOURS = ("red", "green", "blue")
ANNOTATION_SUFFIXES = (".json", ".jsonl")
# The dataset name of folder and list inputs (their lines are keyed by image path, not by position).
FOLDER_INPUT = "images"


@dataclass(frozen=True)
class PredictPrompt:
    """The question asked of every image (GOT's inference prompts).

    Args:
        ocr_type: `ocr` (plain text) or `format` (GOT's formatted output: markdown, LaTeX).
        box: Only read this region, `[x1, y1, x2, y2]` in pixels of the original image.
        color: Only read text framed in this colour (`red`, `green` or `blue`).
    """

    ocr_type: OcrType = "ocr"
    box: list[int] | None = None
    color: str | None = None

    def __post_init__(self) -> None:
        if self.box is not None and (len(self.box) != 4 or self.box[0] >= self.box[2] or self.box[1] >= self.box[3]):
            raise SettingError(f"box must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2, got {self.box}")
        if self.color is not None and self.color not in COLOURS:
            raise SettingError(f"color must be one of {', '.join(COLOURS)}, got {self.color!r}")

    def text(self, image_size: tuple[int, int] | None, tiles_mode: bool) -> str:
        """The human turn for an image of this (width, height); the size is needed only with a box."""
        if tiles_mode:
            query = "OCR with format upon the patch reference: "
        else:
            query = "OCR with format: " if self.ocr_type == "format" else "OCR: "
        if self.box is not None:
            width, height = image_size
            x1, y1, x2, y2 = self.box
            scaled = [round(x1 / width * 1000), round(y1 / height * 1000), round(x2 / width * 1000), round(y2 / height * 1000)]
            query = f"[{', '.join(str(min(1000, max(0, v))) for v in scaled)}] {query}"
        elif self.color is not None:
            query = f"[{self.color}] {query}"
        return f"{IMAGE_PLACEHOLDER}\n{query}"


def list_images(source: str | Path) -> list[str]:
    """Image paths of a folder (recursively, sorted) or of a list file (one path per line, relative
    paths taken from the list file's folder)."""
    source = Path(source)
    if source.is_dir():
        images = sorted(str(path) for path in source.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
        if not images:
            raise InputFileError(f"predict input {source} holds no image ({', '.join(IMAGE_SUFFIXES)}): nothing to read")
        return images
    if not source.is_file():
        raise InputNotFoundError(f"predict input {source} does not exist")
    images = []
    for line in source.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line)
            images.append(str(path if path.is_absolute() else source.parent / path))
    if not images:
        raise InputFileError(f"predict input {source} lists no image: nothing to read")
    return images


def is_annotation_file(source: str | Path) -> bool:
    return Path(source).suffix.lower() in ANNOTATION_SUFFIXES and Path(source).is_file()


class ImageFolderDataset(Dataset):
    """One sample per image, asking the same prompt; a bad image comes back as its problem."""

    def __init__(self, images: list[str], builder: SampleBuilder, prompt: PredictPrompt, tiles_mode: bool) -> None:
        self.images = images
        self.builder = builder
        self.prompt = prompt
        self.tiles_mode = tiles_mode

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: int) -> dict:
        path = Path(self.images[item])
        try:
            size = None
            if self.prompt.box is not None:
                size = self.builder.page_size(self.builder.resolve(Record((path.name,), ()), path.parent)[0])
            human = self.prompt.text(size, self.tiles_mode)
            sample = self.builder.build(Record((path.name,), (Turn(HUMAN, human), Turn(GPT, ""))), path.parent)
        except BadSampleError as error:
            return {"problem": error.problem(FOLDER_INPUT, item, str(path))}
        sample["key"] = (FOLDER_INPUT, item)
        sample["images"] = [str(path)]
        return sample
