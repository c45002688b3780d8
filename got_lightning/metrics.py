"""OCR scores: text normalization, per-sample edit statistics and their DDP-safe aggregation."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass

import torch
from rapidfuzz.distance import Levenshtein
from torchmetrics import Metric


@dataclass(frozen=True)
class TextNormalization:
    """Applied identically to prediction and reference before any score is computed.

    Args:
        nfkc: Unicode NFKC (full-width forms to ASCII, compatibility ideographs to unified ones).
        remove_punctuation: Drop every Unicode punctuation character (categories P*).
        remove_newlines: Drop line breaks (labels without newlines, as in the user story).
        remove_whitespace: Drop all whitespace, newlines included (CJK pages).
        collapse_whitespace: Turn each run of whitespace, newlines included, into one space.
        strip: Drop leading and trailing whitespace.
    """

    nfkc: bool = False
    remove_punctuation: bool = False
    remove_newlines: bool = False
    remove_whitespace: bool = False
    collapse_whitespace: bool = False
    strip: bool = True

    def __call__(self, text: str) -> str:
        if self.nfkc:
            text = unicodedata.normalize("NFKC", text)
        if self.remove_punctuation:
            text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
        if self.remove_newlines:
            text = text.replace("\r", "").replace("\n", "")
        if self.remove_whitespace:
            text = "".join(text.split())
        elif self.collapse_whitespace:
            text = " ".join(text.split())
        if self.strip:
            text = text.strip()
        return text

    def describe(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True)
class SampleScore:
    """Edit statistics of one (normalized) prediction against its reference."""

    edits: int
    reference_chars: int
    prediction_chars: int
    common_chars: int

    @classmethod
    def of(cls, prediction: str, reference: str) -> SampleScore:
        common = sum((Counter(prediction) & Counter(reference)).values())
        return cls(Levenshtein.distance(prediction, reference), len(reference), len(prediction), common)

    @property
    def cer(self) -> float:
        """Edits per reference character (an empty reference scores 0 if matched, else 1 per char)."""
        if self.reference_chars == 0:
            return float(self.edits)
        return self.edits / self.reference_chars

    @property
    def normalized_edit_distance(self) -> float:
        """Upstream GOT's edit distance: edits / max(len(prediction), len(reference))."""
        longest = max(self.reference_chars, self.prediction_chars)
        return self.edits / longest if longest else 0.0

    @property
    def f1(self) -> float:
        """Character F1 over the multisets of characters (both empty: 1)."""
        total = self.reference_chars + self.prediction_chars
        return 2 * self.common_chars / total if total else 1.0

    @property
    def exact(self) -> bool:
        return self.edits == 0


class OcrMetrics(Metric):
    """Scores over a whole split from summed states, so DDP ranks combine exactly.

    `cer` is torchmetrics' `CharErrorRate` (total edits / total reference characters), computed with
    rapidfuzz's C++ Levenshtein: the same numbers, fast enough for pages of thousands of characters.
    `edit_distance` (upstream's normalized edit distance), `f1` and `exact_match` are means over samples.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("edits", "reference_chars", "edit_distance_sum", "f1_sum", "exact_matches", "samples"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: list[SampleScore]) -> None:
        for score in scores:
            self.edits += score.edits
            self.reference_chars += score.reference_chars
            self.edit_distance_sum += score.normalized_edit_distance
            self.f1_sum += score.f1
            self.exact_matches += float(score.exact)
            self.samples += 1

    def compute(self) -> dict[str, torch.Tensor]:
        samples = self.samples.clamp(min=1)
        return {
            "cer": self.edits / self.reference_chars.clamp(min=1),
            "edit_distance": self.edit_distance_sum / samples,
            "f1": self.f1_sum / samples,
            "exact_match": self.exact_matches / samples,
            "num_samples": self.samples,
            "edits": self.edits,
            "reference_chars": self.reference_chars,
        }
