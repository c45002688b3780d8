"""Writes `predict` results as they come, so that a rerun after a crash continues: JSON lines (each
input once, whatever the number of processes), optionally one `.txt` per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from rich.console import Console

from got_lightning.core.run_dir import RunDir
from got_lightning.data.datamodule import attached_datamodule
from got_lightning.data.predict import FOLDER_INPUT
from got_lightning.evaluation.prediction_files import PredictionFiles, durable_flush, open_for_append


class PredictionWriter(BasePredictionWriter):
    """`got-lightning predict` output.

    A rerun of the same command continues where the last one stopped: inputs already in the file
    are skipped. With several processes each writes a part file, merged into one file in input
    order at the end.

    Args:
        path: JSONL file to write (default `<default_root_dir>/predict/predictions.jsonl`).
        write_txt: Also write each prediction to `txt/<image name>.txt` beside the JSONL file.
        overwrite: Start over instead of continuing an earlier run's file.
        retry_errors: Read again the inputs whose earlier line is an error (an image fixed since).
    """

    def __init__(
        self, path: str | None = None, write_txt: bool = False, overwrite: bool = False, retry_errors: bool = False
    ) -> None:
        super().__init__(write_interval="batch")
        self.path = path
        self.write_txt = write_txt
        self.overwrite = overwrite
        self.retry_errors = retry_errors
        self._files: PredictionFiles | None = None
        self._handle: IO[str] | None = None
        self._written = self._failed = self._skipped = 0
        self._done: set = set()

    def output_file(self, trainer: L.Trainer) -> Path:
        return Path(self.path) if self.path else RunDir(trainer.default_root_dir).predictions

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Before the inputs are read: decide which are already done (every process alike)."""
        if stage != "predict":
            return
        self._files = PredictionFiles(self.output_file(trainer))
        settings = _settings(trainer, pl_module)
        if self.overwrite:
            if trainer.is_global_zero:
                self._files.clear()
            done: set = set()
        else:
            self._files.check_settings(settings)
            done = self._files.done(self.retry_errors)
        trainer.strategy.barrier("prediction files ready")
        if trainer.is_global_zero:
            self._files.write_settings(settings)
        self._skipped, self._done = len(done), done
        if (data := attached_datamodule(trainer)) is not None:
            data.skip_predicted(done)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        target = self._files.path if trainer.world_size == 1 else self._files.part(trainer.global_rank)
        self._handle = open_for_append(target)
        self._written = self._failed = 0
        if trainer.is_global_zero:  # records of an annotation file that could not even be read
            data = attached_datamodule(trainer)
            for problem in data.predict_index_problems if data is not None else []:
                if problem.index not in self._done:
                    self._write(problem_line(problem.to_dict()))
                    self._failed += 1

    def write_on_batch_end(
        self, trainer, pl_module, prediction: list[dict[str, Any]], batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        for problem in batch.get("problems", []):
            self._write(problem_line(problem))
            self._failed += 1
        for result in prediction:
            self._write(result)
            self._written += 1
            if self.write_txt:
                self._write_txt(result)
        durable_flush(self._handle)

    def _write(self, line: dict[str, Any]) -> None:
        self._handle.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _write_txt(self, result: dict[str, Any]) -> None:
        image = result["image"] if isinstance(result["image"], str) else result["image"][0]
        target = self._files.path.parent / "txt" / f"{Path(image).stem}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result["prediction"], encoding="utf-8")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._handle.close()
        trainer.strategy.barrier("predictions written")
        written = self._written, self._failed
        if trainer.world_size > 1:
            written = tuple(int(total) for total in trainer.strategy.reduce(_counts(written), reduce_op="sum"))
        if not trainer.is_global_zero:
            return
        total = len(self._files.lines())
        if trainer.world_size > 1 or self._files.parts.exists():
            data = attached_datamodule(trainer)
            total = self._files.merge(data.predict_keys if data is not None else None)
        new, failed = written
        failed_note = f", {failed} image(s) failed (see their 'error')" if failed else ""
        kept = f"; {self._skipped} already there from an earlier run" if self._skipped else ""
        Console(soft_wrap=True).print(
            f"{new} prediction(s) written to {self._files.path}{failed_note}{kept} ({total} line(s) in all)", markup=False
        )


def problem_line(problem: dict[str, Any]) -> dict[str, Any]:
    """The line of an input that could not be read: its image, its record position when it came
    from an annotation file, and the reason."""
    line: dict[str, Any] = {"image": problem["image"]}
    if problem["dataset"] != FOLDER_INPUT:
        line["position"] = problem["index"]
    line["error"] = problem["reason"]
    return line


def _counts(values: tuple[int, int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def _settings(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
    """What decides the text of every line: a rerun must match them to continue the file."""
    data = attached_datamodule(trainer)
    hparams = pl_module.hparams
    return {
        **(data.predict_settings() if data is not None else {}),
        "model_path": hparams.get("model_path"),
        "revision": hparams.get("revision"),
        "checkpoint": None if trainer.ckpt_path is None else str(Path(trainer.ckpt_path).resolve()),
        "generation": dict(hparams.get("generation") or {}),
    }
