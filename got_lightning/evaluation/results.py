"""Held-out results on disk: one JSON object per sample in `predictions.jsonl`, totals in `metrics.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from got_lightning.core.atomic_files import atomic_write_text
from got_lightning.core.errors import InputFileError, InputNotFoundError
from got_lightning.evaluation.failure_modes import loop_at_end
from got_lightning.evaluation.scores import SampleScore, TextNormalization

PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"


def single_or_list(values: list[str]) -> str | list[str]:
    """A record's single image as a string, several as a list."""
    return values[0] if len(values) == 1 else values


def scored_record(
    key: tuple[str, int],
    images: list[str],
    image_paths: list[str],
    prediction_raw: str,
    reference_raw: str,
    normalization: TextNormalization,
    reading: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], SampleScore]:
    """One sample's line (the strings scored, normalized, beside the raw ones) and its score;
    `reading` holds how the answer was generated (`new_tokens`, `truncated`, `confidence`), and
    `repetition` says whether it ends in a loop."""
    prediction, reference = normalization(prediction_raw), normalization(reference_raw)
    score = SampleScore.of(prediction, reference)
    return {
        "dataset": key[0],
        "position": key[1],
        "image": single_or_list(images),
        "image_path": single_or_list(image_paths),
        "reference": reference,
        "prediction": prediction,
        "cer": score.cer,
        "edit_distance": score.normalized_edit_distance,
        "f1": score.f1,
        "exact": score.exact,
        "edits": score.edits,
        "reference_chars": score.reference_chars,
        "reference_raw": reference_raw,
        "prediction_raw": prediction_raw,
        **(reading or {}),
        "repetition": loop_at_end(prediction_raw) is not None,
    }, score


def prediction_line(
    images: list[str],
    image_paths: list[str],
    prediction: str,
    *,
    new_tokens: int,
    truncated: bool,
    confidence: dict[str, float | None],
    seconds: float,
    position: int | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """One `predict` line: the image, the text read, how it was read (answer tokens, whether it
    stopped at the token limit, the mean and lowest probability of its tokens, seconds from the
    start of its batch to its last token), the record position and reference of an annotation input."""
    line: dict[str, Any] = {"image": single_or_list(images), "image_path": single_or_list(image_paths)}
    if position is not None:
        line["position"] = position
    line["prediction"] = prediction
    if reference:
        line["reference"] = reference
    line.update(new_tokens=new_tokens, truncated=truncated, confidence=confidence, seconds=round(seconds, 4))
    return line


def write_results(folder: str | Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> tuple[Path, Path]:
    """Write `predictions.jsonl` and `metrics.json` into `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    predictions = folder / PREDICTIONS_FILE
    atomic_write_text(predictions, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    metrics_path = folder / METRICS_FILE
    atomic_write_text(metrics_path, json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
    return predictions, metrics_path


def predictions_path(path: str | Path) -> Path:
    """A predictions file as given, or the one inside a validation folder."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist: give a predictions.jsonl or a validation folder")
    if not path.is_dir():
        return path
    if not (path / PREDICTIONS_FILE).is_file():
        raise InputFileError(f"{path} is a folder without a {PREDICTIONS_FILE}: give a predictions file or a validation folder")
    return path / PREDICTIONS_FILE


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """The records of a `predictions.jsonl` file (or of the one in a validation folder); a line
    that is not a JSON object is named with its file and number."""
    path = predictions_path(path)
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise InputFileError(f"{path} line {number}: not valid JSON ({error})") from None
            if not isinstance(record, dict):
                raise InputFileError(f"{path} line {number}: not a JSON object")
            records.append(record)
    return records
