"""Base vs fine-tuned predictions on the same held-out samples: totals, per-sample changes, diffs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rapidfuzz.distance import Levenshtein

from got_lightning.evaluation.results import read_predictions
from got_lightning.evaluation.metrics import OcrMetrics
from got_lightning.evaluation.scores import SampleScore

DiffKind = Literal["equal", "wrong", "missing"]
Verdict = Literal["better", "worse", "same"]
# (key in OcrMetrics' results, label, whether lower is better)
METRICS = (("cer", "CER", True), ("edit_distance", "edit distance", True), ("f1", "character F1", False), ("exact_match", "exact match", False))


@dataclass(frozen=True)
class DiffSegment:
    """A run of a prediction against its reference: `equal`, `wrong` (substituted or inserted
    prediction characters) or `missing` (reference characters the prediction lacks)."""

    kind: DiffKind
    text: str


def character_diff(prediction: str, reference: str) -> list[DiffSegment]:
    """The prediction as segments aligned to the reference by a minimal edit script."""
    segments = []
    for op in Levenshtein.opcodes(reference, prediction):
        if op.tag == "equal":
            segments.append(DiffSegment("equal", prediction[op.dest_start:op.dest_end]))
        elif op.tag == "delete":
            segments.append(DiffSegment("missing", reference[op.src_start:op.src_end]))
        else:
            segments.append(DiffSegment("wrong", prediction[op.dest_start:op.dest_end]))
    return segments


@dataclass(frozen=True)
class MetricChange:
    """One split-level score before and after."""

    label: str
    base: float
    tuned: float
    verdict: Verdict

    @property
    def change(self) -> float:
        return self.tuned - self.base


@dataclass(frozen=True)
class SampleChange:
    """One sample scored before and after fine-tuning."""

    image: str
    image_path: str | None
    reference: str
    base: str
    tuned: str
    base_score: SampleScore
    tuned_score: SampleScore

    @property
    def cer_change(self) -> float:
        return self.tuned_score.cer - self.base_score.cer


@dataclass(frozen=True)
class Comparison:
    """Two prediction files matched by image."""

    base_file: str
    tuned_file: str
    changes: list[SampleChange]
    only_base: int
    only_tuned: int

    def totals(self, which: Literal["base", "tuned"]) -> dict[str, float]:
        metric = OcrMetrics()
        metric.update([change.base_score if which == "base" else change.tuned_score for change in self.changes])
        return {name: float(value) for name, value in metric.compute().items()}

    def metric_changes(self) -> list[MetricChange]:
        """CER, edit distance, F1 and exact match before and after, each judged better or worse."""
        base, tuned = self.totals("base"), self.totals("tuned")
        changes = []
        for key, label, lower_is_better in METRICS:
            difference = tuned[key] - base[key]
            improved = difference < 0 if lower_is_better else difference > 0
            verdict = "better" if improved else "worse" if difference else "same"
            changes.append(MetricChange(label, base[key], tuned[key], verdict))
        return changes

    @property
    def improved(self) -> list[SampleChange]:
        """Samples whose CER went down, largest drop first."""
        return sorted((c for c in self.changes if c.cer_change < 0), key=lambda c: (c.cer_change, c.image))

    @property
    def regressed(self) -> list[SampleChange]:
        """Samples whose CER went up, largest rise first."""
        return sorted((c for c in self.changes if c.cer_change > 0), key=lambda c: (-c.cer_change, c.image))

    @property
    def unchanged(self) -> int:
        return sum(1 for c in self.changes if c.cer_change == 0)


def _image_key(record: dict[str, Any]) -> str:
    image = record["image"]
    return image if isinstance(image, str) else "|".join(image)


def _by_image(path: str | Path) -> dict[str, dict[str, Any]]:
    records = {}
    for number, record in enumerate(read_predictions(path), 1):
        missing = [key for key in ("image", "reference", "prediction") if key not in record]
        if missing:
            raise ValueError(f"{path} line {number}: missing {', '.join(missing)} (not a predictions.jsonl from validate?)")
        records[_image_key(record)] = record
    return records


def compare(base_file: str | Path, tuned_file: str | Path) -> Comparison:
    """Match two `predictions.jsonl` files by image and score both sides on the shared samples."""
    base, tuned = _by_image(base_file), _by_image(tuned_file)
    shared = sorted(set(base) & set(tuned))
    if not shared:
        raise ValueError(f"{base_file} and {tuned_file} have no image in common")
    changes = []
    for image in shared:
        before, after = base[image], tuned[image]
        if before["reference"] != after["reference"]:
            raise ValueError(
                f"image {image!r} has different references in {base_file} and {tuned_file} "
                "(validated on other labels, or with other normalization settings?)"
            )
        changes.append(SampleChange(
            image=image,
            image_path=after.get("image_path") if isinstance(after.get("image_path"), str) else None,
            reference=after["reference"],
            base=before["prediction"],
            tuned=after["prediction"],
            base_score=SampleScore.of(before["prediction"], before["reference"]),
            tuned_score=SampleScore.of(after["prediction"], after["reference"]),
        ))
    return Comparison(str(base_file), str(tuned_file), changes, len(set(base) - set(tuned)), len(set(tuned) - set(base)))
