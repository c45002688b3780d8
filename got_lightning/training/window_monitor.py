"""Per accumulation window (one optimizer step): the loss over the effective batch, throughput, and
the stop for a run whose batches hold no readable sample."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch

from got_lightning.core.errors import UserError
from got_lightning.data.accumulation import WindowPosition
from got_lightning.data.collate import Batch
from got_lightning.data.errors import commonest_reasons


class NothingToTrainError(UserError, RuntimeError):
    """Too many consecutive optimizer steps without a single readable training sample."""


class WindowMonitor(L.Callback):
    """Logs `train/loss` (mean over every supervised token of the window, all ranks), samples and
    tokens per second, skipped samples and the learning rate once per window, and stops the run
    after `max_empty_steps` windows in a row without one readable sample (a wrong `image_root`,
    say: its steps would train nothing while it reports success).

    Reads the `loss_sum` and `window_tokens` that `GotLightningModule.training_step` returns.
    """

    def __init__(self, max_empty_steps: int) -> None:
        self.max_empty_steps = max_empty_steps
        self.empty_in_a_row = 0
        self._start(torch.device("cpu"))

    def _start(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.started = time.perf_counter()
        self.samples = 0
        self.input_tokens = 0
        self.skipped = 0
        self.reasons: list[str] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Batch, batch_idx: int) -> None:
        if WindowPosition.of(batch).starts:
            self._start(pl_module.device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: dict[str, Any], batch: Batch, batch_idx: int
    ) -> None:
        if batch["size"]:
            self.samples += batch["size"]
            self.input_tokens += int(batch["attention_mask"].sum())
        self.skipped += len(batch["problems"])
        self.reasons += [problem["reason"] for problem in batch["problems"]]
        self.loss_sum = self.loss_sum + outputs["loss_sum"].float()
        if WindowPosition.of(batch).ends:
            self._log(trainer, pl_module, outputs["window_tokens"])

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, window_tokens: torch.Tensor) -> None:
        strategy = trainer.strategy
        loss = strategy.reduce(self.loss_sum, reduce_op="sum") / window_tokens.clamp(min=1.0)
        counts = torch.tensor([self.samples, self.input_tokens, self.skipped], device=pl_module.device, dtype=torch.float)
        samples, input_tokens, skipped = strategy.reduce(counts, reduce_op="sum")
        seconds = max(time.perf_counter() - self.started, 1e-9)
        pl_module.log("train/loss", loss, prog_bar=True, batch_size=1)
        pl_module.log("train/supervised_tokens", window_tokens, batch_size=1)
        pl_module.log("train/samples_per_s", samples / seconds, batch_size=1)
        pl_module.log("train/tokens_per_s", input_tokens / seconds, batch_size=1)
        pl_module.log("train/supervised_tokens_per_s", window_tokens / seconds, batch_size=1)
        if skipped:
            pl_module.log("train/skipped_samples", skipped, reduce_fx="sum", batch_size=1)
        cache = getattr(pl_module, "feature_cache", None)
        if cache is not None:
            pl_module.log("train/feature_cache_hit_rate", cache.hits / max(cache.hits + cache.misses, 1), batch_size=1)
        groups = trainer.optimizers[0].param_groups
        pl_module.log("lr", next((g for g in groups if g.get("part") == "model"), groups[0])["lr"], prog_bar=True, batch_size=1)
        self._check_not_empty(int(samples), trainer.global_step)

    def _check_not_empty(self, samples: int, step: int) -> None:
        """`samples` is the sum over ranks, so every rank takes the same decision."""
        self.empty_in_a_row = 0 if samples else self.empty_in_a_row + 1
        if self.empty_in_a_row >= self.max_empty_steps:
            raise NothingToTrainError(
                f"{self.empty_in_a_row} optimizer steps in a row had no training sample that could be read "
                f"(up to step {step}; {commonest_reasons(self.reasons) or 'empty batches'}); "
                "check the datasets with `got-lightning data check --config ...`"
            )
