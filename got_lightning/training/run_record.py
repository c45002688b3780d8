"""What a checkpoint records about the run that wrote it: the datasets, the command, and the
held-out figures of its step; the export's model card reads them back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from got_lightning.core.run_dir import RunDir
from got_lightning.evaluation.results import METRICS_FILE

CARD_KEY = "got_lightning"


@dataclass
class RunRecord:
    """What a checkpoint records about the run that wrote it (saved under `CARD_KEY`)."""

    datasets: list[str] = field(default_factory=list)
    command: str | None = None
    held_out: dict[str, Any] | None = None

    @classmethod
    def of_checkpoint(cls, checkpoint: dict[str, Any]) -> RunRecord:
        return cls(**checkpoint.get(CARD_KEY, {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a card needs of a validation's `metrics.json`."""
    summary = {key: metrics.get(key) for key in ("cer", "num_samples", "num_held_out", "global_step")}
    summary["normalization"] = ", ".join(name for name, on in (metrics.get("normalization") or {}).items() if on)
    return summary


def held_out_for(record: RunRecord, checkpoint: Path, step: int) -> dict[str, Any] | None:
    """The held-out figures of the checkpoint's own step: recorded in it, or the run's validation
    files of that step (a step's checkpoint is written before its validation runs); else the latest
    recorded ones."""
    if record.held_out and record.held_out.get("global_step") == step:
        return record.held_out
    metrics = RunDir.of_checkpoint(checkpoint).validation_at(step) / METRICS_FILE
    if metrics.is_file():
        return held_out_summary(json.loads(metrics.read_text(encoding="utf-8")))
    return record.held_out
