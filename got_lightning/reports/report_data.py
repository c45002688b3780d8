"""The comparison as data: the JSON file written beside the HTML report, and the rows its page script
renders. Rankings are by edits, which is what moves the corpus CER (total edits / total characters)."""

from __future__ import annotations

from typing import Any

from got_lightning.reports.comparison import Comparison, SampleChange, align, aligned_lines

# Segment kinds as the page script reads them.
KIND_CODES = {"equal": "e", "substituted": "s", "missing": "m", "extra": "x"}


def _scores(change: SampleChange) -> dict[str, Any]:
    return {
        "image": change.image,
        "dataset": change.dataset,
        "status": change.status,
        "reference_chars": change.tuned_score.reference_chars,
        "base_edits": change.base_score.edits,
        "tuned_edits": change.tuned_score.edits,
        "edit_change": change.edit_change,
        "base_cer": round(change.base_score.cer, 6),
        "tuned_cer": round(change.tuned_score.cer, 6),
        "truncated": change.tuned_flags.truncated,
        "repetition": change.tuned_flags.repetition,
        "confidence": change.tuned_flags.confidence,
    }


def _confusion_rows(confusions: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    return [{"expected": expected, "read": read, "count": count} for expected, read, count in confusions]


def _totals(comparison: Comparison, changes: list[SampleChange] | None = None) -> dict[str, Any]:
    return {"base": comparison.totals("base", changes), "tuned": comparison.totals("tuned", changes)}


PAGES_TO_CHECK = 50


def analysis(comparison: Comparison) -> dict[str, Any]:
    """The figures beyond the totals, once per report: the paper's metrics, the CER change with its
    interval, CER by character class and by page length, runaway pages, confidence."""
    sides = ("base", "tuned")
    return {
        "paper": {side: comparison.paper(side) for side in sides},
        "cer_change": comparison.cer_change_interval(),
        "by_class": {side: comparison.by_class(side) for side in sides},
        "by_length": {side: comparison.by_length(side) for side in sides},
        "failures": {side: comparison.failures(side) for side in sides},
        "confidence": {side: comparison.confidence(side) for side in sides},
        "to_check": [_scores(change) for change in comparison.to_check[:PAGES_TO_CHECK]],
    }


def summary(comparison: Comparison, figures: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the report shows, as JSON: totals overall and per dataset, run details, every
    sample still wrong (most edits first), improvements and regressions (largest edit change
    first), the character confusions of both sides, and the `analysis` figures."""
    return {
        "base_file": comparison.base_file,
        "tuned_file": comparison.tuned_file,
        "base_run": comparison.base_details,
        "tuned_run": comparison.tuned_details,
        "shared_samples": len(comparison.changes),
        "only_base": comparison.only_base,
        "only_tuned": comparison.only_tuned,
        "totals": _totals(comparison),
        "datasets": {
            name: {"samples": len(changes), **_totals(comparison, changes)} for name, changes in comparison.by_dataset().items()
        },
        "counts": {
            "improved": len(comparison.improved),
            "regressed": len(comparison.regressed),
            "unchanged": comparison.unchanged,
            "still_wrong": len(comparison.still_wrong),
        },
        "still_wrong": [_scores(change) for change in comparison.still_wrong],
        "improved": [_scores(change) for change in comparison.improved],
        "regressed": [_scores(change) for change in comparison.regressed],
        "confusions": {
            "base": _confusion_rows(comparison.confusions("base")),
            "tuned": _confusion_rows(comparison.confusions("tuned")),
        },
        **(figures if figures is not None else analysis(comparison)),
    }


def _reading(prediction: str, reference: str) -> list[list[list[str]]]:
    """Line by line, segments as [kind code, expected, read]."""
    return [
        [[KIND_CODES[s.kind], s.reference, s.prediction] for s in line] for line in aligned_lines(align(prediction, reference))
    ]


def page_rows(comparison: Comparison, image_ids: dict[str, int]) -> list[dict[str, Any]]:
    """One row per shared sample for the page script: scores, both readings aligned line by line
    with the reference, the reference itself and the embedded image's number (-1: none)."""
    rows = []
    for change in comparison.changes:
        rows.append(
            {
                **_scores(change),
                "image_path": change.image_path,
                "reference": change.reference,
                "base_reading": _reading(change.base, change.reference),
                "tuned_reading": _reading(change.tuned, change.reference),
                "picture": image_ids.get(change.image, -1),
            }
        )
    return rows
