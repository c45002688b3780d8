"""Writes `predict` results as they come: JSON lines, and optionally one `.txt` per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from rich.console import Console


class PredictionWriter(BasePredictionWriter):
    """`got-lightning predict` output.

    Args:
        path: JSONL file to write (default `<default_root_dir>/predict/predictions.jsonl`; with
            several processes each rank writes `<name>.rank<N>.jsonl`).
        write_txt: Also write each prediction to `txt/<image name>.txt` beside the JSONL file.
    """

    def __init__(self, path: str | None = None, write_txt: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.path = path
        self.write_txt = write_txt
        self._handle: IO[str] | None = None
        self._file: Path | None = None
        self._written = 0
        self._failed = 0

    def output_file(self, trainer: L.Trainer) -> Path:
        path = Path(self.path) if self.path else Path(trainer.default_root_dir) / "predict" / "predictions.jsonl"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        return path

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._file = self.output_file(trainer)
        self._file.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self._file.open("w", encoding="utf-8")
        self._written = self._failed = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction: list[dict[str, Any]], batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        for problem in batch.get("problems", []):
            self._write({"image": problem["image"], "error": problem["reason"]})
            self._failed += 1
        for result in prediction:
            self._write(result)
            self._written += 1
            if self.write_txt:
                self._write_txt(result)
        self._handle.flush()

    def _write(self, line: dict[str, Any]) -> None:
        self._handle.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _write_txt(self, result: dict[str, Any]) -> None:
        image = result["image"] if isinstance(result["image"], str) else result["image"][0]
        target = self._file.parent / "txt" / f"{Path(image).stem}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result["prediction"], encoding="utf-8")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._handle.close()
        failed = f", {self._failed} image(s) failed (see their 'error')" if self._failed else ""
        Console().print(f"{self._written} prediction(s) written to {self._file}{failed}")
