"""The layout of a run directory (`trainer.default_root_dir`), in one place: where `fit` keeps its
checkpoints and each validation's files, where `validate`/`test` and `predict` write, the lock, and
where a fresh start moves an earlier run. Every other module asks here for a path."""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINTS = "checkpoints"
VALIDATION = "validation"
BEFORE_FIT = "before-fit"
STEP_FOLDER = re.compile(r"^step-(\d+)$")
REQUEUE_CHECKPOINTS = "hpc_ckpt_*.ckpt"  # Lightning's SLURM requeue checkpoints, in the run directory itself


def step_name(step: int) -> str:
    """`step-000120`: a validation's folder name (and its tag in a logger)."""
    return f"step-{step:06d}"


class RunDir:
    """A run directory and the paths in it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunDir:
        """The run a checkpoint of `checkpoints/` belongs to."""
        return cls(Path(checkpoint).parent.parent)

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def requeue_checkpoints(self) -> list[Path]:
        return sorted(self.root.glob(REQUEUE_CHECKPOINTS))

    @property
    def validation(self) -> Path:
        return self.root / VALIDATION

    def validation_at(self, step: int) -> Path:
        """The files of `fit`'s validation after optimizer step `step`."""
        return self.validation / step_name(step)

    @property
    def before_fit(self) -> Path:
        """The files of `--validate_before_fit`'s validation of the untrained model."""
        return self.validation / BEFORE_FIT

    @property
    def predictions(self) -> Path:
        """`predict`'s output unless the user names another file."""
        return self.root / "predict" / "predictions.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / "run.lock"

    def replaced(self, stamp: str) -> Path:
        """Where `--fresh_start` moves the earlier run's outputs."""
        return self.root / f"replaced-{stamp}"

    @property
    def outputs_of_a_run(self) -> tuple[Path, ...]:
        """What belongs to a run's checkpoints: moved aside together on a fresh start."""
        return (self.checkpoints, self.validation)
