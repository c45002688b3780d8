"""One evaluation epoch's held-out results: every rank's scored records and skipped samples gathered,
written as result files by rank 0 and summarised on the console; nothing scored is said, never
reported as a perfect score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from rich.console import Console

from got_lightning.core.errors import UserError
from got_lightning.core.run_dir import RunDir
from got_lightning.data.datamodule import attached_datamodule
from got_lightning.data.errors import commonest_reasons
from got_lightning.evaluation.failure_modes import failure_counts, truncation_warning
from got_lightning.evaluation.gather import gather_problems, gather_records
from got_lightning.evaluation.paper_metrics import annotate_records, paper_summary
from got_lightning.evaluation.results import write_results

SCORE_NAMES = ("cer", "edit_distance", "f1", "exact_match")


class NothingScoredError(UserError, RuntimeError):
    """`validate`/`test` found no held-out sample it could score."""


def results_dir(trainer: L.Trainer, folder: Path | None = None) -> Path:
    """Where an evaluation writes its files: the run directory for `validate`/`test`, a folder per
    step during `fit`, or the folder a caller chose."""
    if folder is not None:
        return folder
    run = RunDir(trainer.default_root_dir)
    return run.validation_at(trainer.global_step) if trainer.state.fn == "fit" else run.root


class HeldOutResults:
    """Collects an evaluation epoch's records on each rank; `publish` ends the epoch."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.folder: Path | None = None  # instead of results_dir's choice
        self.latest: list[dict[str, Any]] = []  # the last published epoch's scored records (rank 0)

    def reset(self) -> None:
        self.records, self.skipped = [], []

    def add(self, records: list[dict[str, Any]], problems: list[dict[str, Any]]) -> None:
        self.records.extend(records)
        self.skipped.extend(problems)

    def publish(
        self, trainer: L.Trainer, values: dict[str, float], loss: float | None, details: dict[str, Any]
    ) -> dict[str, Any]:
        """Gather every rank's records, write `predictions.jsonl` and `metrics.json` (rank 0), print
        the summary and return the metrics; raises `NothingScoredError` outside `fit` when no sample
        could be scored (inside `fit` the run goes on and the step's CER is NaN)."""
        records = gather_records(self.records)
        skipped = gather_problems(self.skipped + _index_problems(trainer))
        self.reset()
        metrics = {**_metrics(values, loss, skipped, details), **failure_counts(records)}
        if trainer.is_global_zero:
            metrics["paper"] = annotate_records(records)
            self.latest = records
            predictions, metrics_path = write_results(results_dir(trainer, self.folder), records, metrics)
            _print_summary(metrics, skipped, predictions, metrics_path)
        if not metrics["num_samples"] and trainer.state.fn != "fit":
            raise NothingScoredError(
                f"no held-out sample could be scored: {len(skipped)} skipped "
                f"({_reasons(skipped) or 'the held-out split is empty'}); "
                "every reason is listed under 'skipped' in metrics.json"
            )
        return metrics


def _index_problems(trainer: L.Trainer) -> list[dict[str, Any]]:
    """Records of held-out annotation files that could not even be read (rank 0 reports them)."""
    data = attached_datamodule(trainer)
    if data is None or not trainer.is_global_zero:
        return []
    return [problem.to_dict() for problem in data.held_out_problems]


def _metrics(
    values: dict[str, float], loss: float | None, skipped: list[dict[str, Any]], details: dict[str, Any]
) -> dict[str, Any]:
    counts = {name: int(values[name]) for name in ("num_samples", "edits", "reference_chars")}
    scored = counts["num_samples"]
    return {
        **values,
        **counts,
        **({} if scored else dict.fromkeys(SCORE_NAMES)),
        "num_skipped": len(skipped),
        "num_held_out": scored + len(skipped),
        "skipped": skipped,
        "loss": loss if scored else None,
        **details,
    }


def _reasons(skipped: list[dict[str, Any]]) -> str:
    return commonest_reasons([problem["reason"] for problem in skipped])


def _print_summary(metrics: dict[str, Any], skipped: list[dict[str, Any]], predictions: Path, metrics_path: Path) -> None:
    console = Console(soft_wrap=True)  # lines whole in a narrow console or a log: paths stay copyable
    scored = metrics["num_samples"]
    if not scored:
        console.print(
            f"held-out CER: no sample scored, {len(skipped)} skipped ({_reasons(skipped) or 'empty split'}); see {metrics_path}",
            style="bold red",
            markup=False,
        )
        return
    skipped_note = f"; {len(skipped)} skipped: {_reasons(skipped)}" if skipped else ""
    console.print(
        f"held-out CER {metrics['cer']:.4f} on {scored} of {scored + len(skipped)} samples{skipped_note} "
        f"(edit distance {metrics['edit_distance']:.4f}, F1 {metrics['f1']:.4f}, exact {metrics['exact_match']:.4f})\n"
        f"  GOT paper's metrics: {paper_summary(metrics['paper'])}\n"
        f"  predictions: {predictions}\n  metrics: {metrics_path}",
        style="bold yellow" if skipped else None,
        markup=False,
    )
    warning = truncation_warning(metrics, (metrics.get("generation") or {}).get("max_new_tokens"))
    if warning:
        console.print(warning, style="bold yellow", markup=False)
