"""Base vs fine-tuned predictions of the same held-out samples: totals overall and per dataset,
per-sample changes ranked by edits, what is still wrong, character confusions, aligned readings.
No torch: `compare` and `report` start fast."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rapidfuzz.distance import Levenshtein

from got_lightning.core.errors import InputFileError
from got_lightning.evaluation.failure_modes import failure_counts, loop_at_end
from got_lightning.evaluation.paper_metrics import paper_totals, score_pairs
from got_lightning.evaluation.results import METRICS_FILE, predictions_path, read_predictions
from got_lightning.evaluation.scores import SampleScore, totals
from got_lightning.reports.error_analysis import cer_by_class, cer_by_length, confidence_separation, paired_bootstrap

SegmentKind = Literal["equal", "substituted", "missing", "extra"]
Status = Literal["improved", "regressed", "unchanged"]
Verdict = Literal["better", "worse", "same"]
Side = Literal["base", "tuned"]
# (key in `totals`, label, whether lower is better)
METRICS = (
    ("cer", "CER", True),
    ("edit_distance", "edit distance", True),
    ("f1", "character F1", False),
    ("exact_match", "exact match", False),
)
NO_DATASET = "(unnamed)"


@dataclass(frozen=True)
class Segment:
    """A stretch of a prediction aligned with its reference by a minimal edit script: `equal`,
    `substituted` (the reference's characters read as others), `missing` (reference characters not
    read) or `extra` (characters read that the reference lacks)."""

    kind: SegmentKind
    reference: str
    prediction: str


_KINDS: dict[str, SegmentKind] = {"equal": "equal", "replace": "substituted", "delete": "missing", "insert": "extra"}


def align(prediction: str, reference: str) -> list[Segment]:
    """The prediction aligned with the reference, segment by segment."""
    return [
        Segment(_KINDS[op.tag], reference[op.src_start : op.src_end], prediction[op.dest_start : op.dest_end])
        for op in Levenshtein.opcodes(reference, prediction)
    ]


def aligned_lines(segments: list[Segment]) -> list[list[Segment]]:
    """The alignment cut into the reference's lines (at newlines inside equal stretches), so each
    line of the page pairs with what was read for it."""
    lines: list[list[Segment]] = [[]]
    for segment in segments:
        if segment.kind != "equal" or "\n" not in segment.reference:
            lines[-1].append(segment)
            continue
        parts = segment.reference.split("\n")
        for number, part in enumerate(parts):
            if part:
                lines[-1].append(Segment("equal", part, part))
            if number < len(parts) - 1:
                lines.append([])
    return lines


def edit_pairs(prediction: str, reference: str) -> list[tuple[str, str]]:
    """Every edit as (expected character, character read): a substitution has both, a missing
    character an empty read, an extra one an empty expectation."""
    pairs = []
    for op in Levenshtein.editops(reference, prediction):
        expected = reference[op.src_pos] if op.tag in ("replace", "delete") else ""
        read = prediction[op.dest_pos] if op.tag in ("replace", "insert") else ""
        pairs.append((expected, read))
    return pairs


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
class ReadingFlags:
    """How a reading ended: at the token limit, in a loop, and the model's mean confidence."""

    truncated: bool = False
    repetition: bool = False
    confidence: float | None = None

    @classmethod
    def of(cls, record: dict[str, Any]) -> ReadingFlags:
        raw = record.get("prediction_raw", record["prediction"])
        repetition = record["repetition"] if "repetition" in record else loop_at_end(raw) is not None
        return cls(bool(record.get("truncated")), bool(repetition), (record.get("confidence") or {}).get("mean"))


@dataclass(frozen=True)
class SampleChange:
    """One sample scored before and after fine-tuning."""

    image: str
    image_path: str | None
    dataset: str
    reference: str
    base: str
    tuned: str
    base_score: SampleScore
    tuned_score: SampleScore
    base_flags: ReadingFlags = ReadingFlags()
    tuned_flags: ReadingFlags = ReadingFlags()

    def side(self, which: Side) -> tuple[str, SampleScore, ReadingFlags]:
        """(prediction, score, flags) of one model."""
        if which == "base":
            return self.base, self.base_score, self.base_flags
        return self.tuned, self.tuned_score, self.tuned_flags

    @property
    def edit_change(self) -> int:
        """Edits after minus edits before: what this sample moved the corpus CER by, times its size."""
        return self.tuned_score.edits - self.base_score.edits

    @property
    def cer_change(self) -> float:
        return self.tuned_score.cer - self.base_score.cer

    @property
    def status(self) -> Status:
        return "improved" if self.edit_change < 0 else "regressed" if self.edit_change > 0 else "unchanged"


@dataclass(frozen=True)
class Comparison:
    """Two prediction files matched by image, with the run details found beside them."""

    base_file: str
    tuned_file: str
    changes: list[SampleChange]
    only_base: int
    only_tuned: int
    base_details: dict[str, Any] | None = None
    tuned_details: dict[str, Any] | None = None

    def totals(self, which: Side, changes: list[SampleChange] | None = None) -> dict[str, float]:
        """Split-level scores of one side, over every shared sample or over `changes`."""
        chosen = self.changes if changes is None else changes
        return totals([c.base_score if which == "base" else c.tuned_score for c in chosen])

    def metric_changes(self, changes: list[SampleChange] | None = None) -> list[MetricChange]:
        """CER, edit distance, F1 and exact match before and after, each judged better or worse."""
        base, tuned = self.totals("base", changes), self.totals("tuned", changes)
        result = []
        for key, label, lower_is_better in METRICS:
            difference = tuned[key] - base[key]
            improved = difference < 0 if lower_is_better else difference > 0
            verdict: Verdict = "better" if improved else "worse" if difference else "same"
            result.append(MetricChange(label, base[key], tuned[key], verdict))
        return result

    @property
    def datasets(self) -> list[str]:
        return sorted({change.dataset for change in self.changes})

    def by_dataset(self) -> dict[str, list[SampleChange]]:
        groups: dict[str, list[SampleChange]] = {}
        for change in self.changes:
            groups.setdefault(change.dataset, []).append(change)
        return dict(sorted(groups.items()))

    @property
    def improved(self) -> list[SampleChange]:
        """Samples with fewer edits after, the largest drop first."""
        return sorted((c for c in self.changes if c.edit_change < 0), key=lambda c: (c.edit_change, c.cer_change, c.image))

    @property
    def regressed(self) -> list[SampleChange]:
        """Samples with more edits after, the largest rise first."""
        return sorted((c for c in self.changes if c.edit_change > 0), key=lambda c: (-c.edit_change, -c.cer_change, c.image))

    @property
    def still_wrong(self) -> list[SampleChange]:
        """Every sample the fine-tuned model gets wrong, the most edits first."""
        return sorted(
            (c for c in self.changes if c.tuned_score.edits), key=lambda c: (-c.tuned_score.edits, -c.tuned_score.cer, c.image)
        )

    @property
    def unchanged(self) -> int:
        return sum(1 for c in self.changes if c.edit_change == 0)

    def paper(self, which: Side) -> dict[str, Any]:
        """The GOT paper's metrics of one side over the shared samples."""
        return paper_totals(score_pairs([(change.reference, change.side(which)[0]) for change in self.changes]))

    def cer_change_interval(self, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
        """The change in corpus CER with its paired-bootstrap 95% interval."""
        return paired_bootstrap(
            [change.base_score.edits for change in self.changes],
            [change.tuned_score.edits for change in self.changes],
            [change.tuned_score.reference_chars for change in self.changes],
            resamples,
            seed,
        )

    def by_class(self, which: Side) -> dict[str, dict[str, Any]]:
        """CER by character class (CJK ideographs, other letters, digits, punctuation, ...)."""
        return cer_by_class((change.reference, edit_pairs(change.side(which)[0], change.reference)) for change in self.changes)

    def by_length(self, which: Side) -> dict[str, dict[str, Any]]:
        """CER by band of page length (reference characters)."""
        return cer_by_length((change.side(which)[1].edits, change.side(which)[1].reference_chars) for change in self.changes)

    def failures(self, which: Side) -> dict[str, Any]:
        """Pages that stopped at the token limit and pages that end in a loop."""
        flags = [change.side(which)[2] for change in self.changes]
        return failure_counts([{"truncated": flag.truncated, "repetition": flag.repetition} for flag in flags])

    def confidence(self, which: Side) -> dict[str, Any] | None:
        """How well the side's confidence picks out its wrong pages (None without confidences)."""
        return confidence_separation(
            [
                (change.side(which)[2].confidence, change.side(which)[1].edits, change.side(which)[1].reference_chars)
                for change in self.changes
            ]
        )

    @property
    def to_check(self) -> list[SampleChange]:
        """The fine-tuned model's least confident pages first (those with a confidence)."""
        known = [change for change in self.changes if change.tuned_flags.confidence is not None]
        return sorted(known, key=lambda change: (change.tuned_flags.confidence, change.image))

    def confusions(self, which: Side) -> list[tuple[str, str, int]]:
        """(expected, read, count) over every sample, the commonest first; "" for a character
        missing from the reading (expected) or extra in it (read)."""
        counts: Counter[tuple[str, str]] = Counter()
        for change in self.changes:
            counts.update(edit_pairs(change.base if which == "base" else change.tuned, change.reference))
        return [
            (expected, read, count) for (expected, read), count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        ]


def _image_key(record: dict[str, Any]) -> str:
    image = record["image"]
    return image if isinstance(image, str) else "|".join(image)


SampleKey = tuple[str, str, int]


def _by_sample(path: str | Path) -> dict[SampleKey, dict[str, Any]]:
    """Records by (dataset, image, occurrence): the same image in two datasets is two samples, and
    several records of one image (region or line cuts) pair up in file order."""
    records: dict[SampleKey, dict[str, Any]] = {}
    seen: Counter = Counter()
    for number, record in enumerate(read_predictions(path), 1):
        missing = [key for key in ("image", "reference", "prediction") if key not in record]
        if missing:
            raise InputFileError(f"{path} line {number}: missing {', '.join(missing)} (not a predictions.jsonl from validate?)")
        sample = (str(record.get("dataset") or NO_DATASET), _image_key(record))
        records[(*sample, seen[sample])] = record
        seen[sample] += 1
    return records


def run_details(predictions_file: str | Path) -> dict[str, Any] | None:
    """The `metrics.json` written beside a predictions file by the same validation, if any."""
    path = Path(predictions_file).with_name(METRICS_FILE)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def compare(base_file: str | Path, tuned_file: str | Path) -> Comparison:
    """Match two `predictions.jsonl` files by image and score both sides on the shared samples."""
    base_file, tuned_file = predictions_path(base_file), predictions_path(tuned_file)
    base, tuned = _by_sample(base_file), _by_sample(tuned_file)
    shared = sorted(set(base) & set(tuned))
    if not shared:
        raise InputFileError(f"{base_file} and {tuned_file} have no sample (dataset and image) in common")
    changes = []
    for key in shared:
        before, after, image = base[key], tuned[key], key[1]
        if before["reference"] != after["reference"]:
            raise InputFileError(
                f"image {image!r} has different references in {base_file} and {tuned_file} "
                "(validated on other labels, or with other normalization settings?)"
            )
        path = after.get("image_path")
        changes.append(
            SampleChange(
                image=image,
                image_path=path if isinstance(path, str) else path[0] if isinstance(path, list) and path else None,
                dataset=str(after.get("dataset") or NO_DATASET),
                reference=after["reference"],
                base=before["prediction"],
                tuned=after["prediction"],
                base_score=SampleScore.of(before["prediction"], before["reference"]),
                tuned_score=SampleScore.of(after["prediction"], after["reference"]),
                base_flags=ReadingFlags.of(before),
                tuned_flags=ReadingFlags.of(after),
            )
        )
    return Comparison(
        str(base_file),
        str(tuned_file),
        changes,
        len(set(base) - set(tuned)),
        len(set(tuned) - set(base)),
        run_details(base_file),
        run_details(tuned_file),
    )
