"""`got-lightning score`'s inputs: a `predictions.jsonl` (its `reference` and `prediction`), or
upstream GOT's evaluation output (a JSON list of `{"label", "answer"}`), scored without a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from got_lightning.core.errors import InputFileError
from got_lightning.evaluation.failure_modes import failure_counts, loop_at_end
from got_lightning.evaluation.paper_metrics import annotate_records
from got_lightning.evaluation.scores import SampleScore, TextNormalization, totals

NO_NORMALIZATION = TextNormalization(strip=False)


class ScoreInputError(InputFileError):
    """A file `score` cannot read, naming the file, the record and the reason."""


def read_pairs(path: str | Path) -> tuple[list[dict[str, Any]], str, int]:
    """Every (reference, prediction) record of the file, its format, and the lines without a
    prediction (error lines of `predict`) left out."""
    path = Path(path)
    if not path.is_file():
        raise ScoreInputError(f"{path} does not exist")
    text = path.read_text(encoding="utf-8", errors="strict")
    if text.lstrip().startswith("["):
        return _upstream(path, text), "upstream (label, answer)", 0
    return _predictions(path, text)


def _upstream(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScoreInputError(f"{path} is not valid JSON: {error}") from error
    pairs = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("label"), str) or not isinstance(item.get("answer"), str):
            raise ScoreInputError(
                f"{path} record {number}: expected an object with string 'label' and 'answer', got {item!r:.80}"
            )
        pairs.append({"reference": item["label"], "prediction": item["answer"]})
    return pairs


def _predictions(path: Path, text: str) -> tuple[list[dict[str, Any]], str, int]:
    pairs, without_prediction = [], 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ScoreInputError(f"{path} line {number} is not JSON: {error}") from error
        if not isinstance(record, dict):
            raise ScoreInputError(f"{path} line {number}: expected a JSON object")
        if "prediction" not in record:
            without_prediction += 1
            continue
        if not isinstance(record.get("reference"), str):
            raise ScoreInputError(
                f"{path} line {number} has no 'reference': score needs one per line "
                "(validate's predictions.jsonl, or predict on an annotation file)"
            )
        pairs.append(record)
    if not pairs:
        raise ScoreInputError(f"{path} holds no line with a reference and a prediction")
    return pairs, "predictions.jsonl", without_prediction


def score_file(path: str | Path, normalization: TextNormalization = NO_NORMALIZATION) -> dict[str, Any]:
    """Our metrics, the failure counts and the paper's metrics of a file's pairs."""
    records, kind, without_prediction = read_pairs(path)
    scored = []
    for record in records:
        raw = record.get("prediction_raw", record["prediction"])
        scored.append(
            {
                "reference": normalization(record.get("reference_raw", record["reference"])),
                "prediction": normalization(raw),
                "truncated": record.get("truncated"),
                "repetition": record.get("repetition", loop_at_end(raw) is not None),
            }
        )
    ours = totals([SampleScore.of(record["prediction"], record["reference"]) for record in scored])
    return {
        "file": str(path),
        "format": kind,
        **ours,
        "num_without_prediction": without_prediction,
        **failure_counts(scored),
        "normalization": normalization.describe(),
        "paper": annotate_records(scored),
    }
