"""OCR scores without torch: text normalization, one sample's edit statistics, totals over samples."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass

from rapidfuzz.distance import Levenshtein


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


def totals(scores: list[SampleScore]) -> dict[str, float]:
    """Split-level scores from per-sample ones, as `OcrMetrics` computes them."""
    samples = len(scores)
    edits = sum(score.edits for score in scores)
    reference_chars = sum(score.reference_chars for score in scores)
    return {
        "cer": edits / max(reference_chars, 1),
        "edit_distance": sum(score.normalized_edit_distance for score in scores) / max(samples, 1),
        "f1": sum(score.f1 for score in scores) / max(samples, 1),
        "exact_match": sum(score.exact for score in scores) / max(samples, 1),
        "num_samples": samples,
        "edits": edits,
        "reference_chars": reference_chars,
    }
