"""Errors that name the file, the record and the reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from got_lightning.core.errors import InputFileError, UserError


@dataclass(frozen=True)
class Problem:
    """One bad record: where it is and why it cannot be used."""

    dataset: str
    index: int
    image: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        image = f" image {self.image!r}" if self.image else ""
        return f"dataset {self.dataset!r} record {self.index}{image}: {self.reason}"


def reason_kind(reason: str) -> str:
    """Reasons read "what went wrong: particulars"; the part before the colon."""
    return reason.split(":", 1)[0].strip()


def commonest_reasons(reasons: list[str], shown: int = 3) -> str:
    """`12 x image file not found, 2 x over-length` for the most frequent kinds of reason."""
    counts = Counter(reason_kind(reason) for reason in reasons)
    listed = ", ".join(f"{count} x {kind}" for kind, count in counts.most_common(shown))
    return listed + (f", {len(counts) - shown} other kind(s)" if len(counts) > shown else "")


class BadSampleError(Exception):
    """A record (or its image) that cannot become a training sample."""

    def __init__(self, reason: str, image: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.image = image

    def problem(self, dataset: str, index: int, image: str | None = None) -> Problem:
        return Problem(dataset=dataset, index=index, image=self.image or image, reason=self.reason)


class AnnotationFileError(InputFileError):
    """An annotation file that cannot be read at all (missing, not JSON/JSONL)."""


class NothingToTrainOnError(UserError, ValueError):
    """The train split has no sample that can be read: training would only skip."""
