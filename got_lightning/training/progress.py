"""The progress bar of every command: training steps, and pages for `predict`."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import (
    BatchesProcessedColumn,
    CustomBarColumn,
    CustomTimeColumn,
    RichProgressBarTheme,
)
from rich.progress import ProgressColumn, TextColumn
from rich.text import Text


class _SpeedColumn(ProgressColumn):
    """Items per second, named by the task's `unit` field (`it` by default, `pages` for predict)."""

    def __init__(self, style: Any) -> None:
        self.style = style
        super().__init__()

    def render(self, task: Any) -> Text:
        speed = f"{task.speed:>.2f}" if task.speed is not None else "0.00"
        return Text(f"{speed} {task.fields.get('unit', 'it')}/s", style=self.style)


class GotProgressBar(RichProgressBar):
    """Lightning's rich progress bar, without the "Epoch 4/-2" it shows for open-ended runs
    (`max_epochs: -1`, training until `max_steps`), without the logger's version number (`v_num`),
    with numbers to four significant digits (a learning rate of 1e-4 is not "0.000"), and counting
    pages rather than batches while predicting, with pages/s and the time left."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        if self.theme.metrics_format != RichProgressBarTheme.metrics_format:  # the user chose a format
            return metrics
        return {name: f"{value:.4g}" if isinstance(value, float) else value for name, value in metrics.items()}

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"

    def configure_columns(self, trainer: Any) -> list:
        return [
            TextColumn("[progress.description]{task.description}"),
            CustomBarColumn(
                complete_style=self.theme.progress_bar,
                finished_style=self.theme.progress_bar_finished,
                pulse_style=self.theme.progress_bar_pulse,
            ),
            BatchesProcessedColumn(style=self.theme.batch_progress),
            CustomTimeColumn(style=self.theme.time),
            _SpeedColumn(style=self.theme.processing_speed),
        ]

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_disabled or not self.has_dataloader_changed(dataloader_idx):
            return
        if self.predict_progress_bar_id is not None:
            self.progress.update(self.predict_progress_bar_id, advance=0, visible=False)
        loader = (
            trainer.predict_dataloaders[dataloader_idx]
            if isinstance(trainer.predict_dataloaders, list)
            else trainer.predict_dataloaders
        )
        ranks = f" (process 1 of {trainer.world_size})" if trainer.world_size > 1 else ""
        self.predict_progress_bar_id = self.progress.add_task(f"Reading pages{ranks}", total=len(loader.sampler), unit="pages")
        self._pages = 0
        self.refresh()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_disabled or self.predict_progress_bar_id is None:
            return
        self._pages += batch["size"] + len(batch["problems"])
        self._update(self.predict_progress_bar_id, self._pages)
