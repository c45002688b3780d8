"""The non-finite step guard: an optimizer step whose gradient norm is NaN/inf is skipped (weights
and optimizer state untouched), and too many in a row stop the run before a checkpoint is spoilt."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch

from got_lightning.core.errors import UserError
from got_lightning.data.accumulation import WindowPosition
from got_lightning.data.collate import Batch
from got_lightning.training.strategies import global_grad_norm, is_deepspeed

log = logging.getLogger(__name__)


class NonFiniteTrainingError(UserError, RuntimeError):
    """Too many consecutive optimizer steps with a NaN/inf loss or gradient."""


class NonFiniteGuard(L.Callback):
    """Logs `train/grad_norm` of every optimizer step; a non-finite one is skipped and counted
    (`train/nonfinite_steps_skipped`), and `max_in_a_row` of them in a row raise
    `NonFiniteTrainingError`."""

    def __init__(self, max_in_a_row: int) -> None:
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.total = 0

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if is_deepspeed(trainer.strategy):  # the engine holds the gradients: see on_train_batch_end
            return
        parameters = [p for p in pl_module.parameters() if p.grad is not None]
        if not parameters:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in parameters]))
        # Gradients are already reduced across ranks here, so every rank takes the same decision.
        if not self.record(trainer, pl_module, norm):
            for parameter in parameters:  # the optimizer leaves parameters without gradient untouched
                parameter.grad = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Batch, batch_idx: int
    ) -> None:
        # DeepSpeed computes the global norm inside its step and skips a step whose norm is not
        # finite (an overflow); read what it found once the window's step is done.
        if is_deepspeed(trainer.strategy) and WindowPosition.of(batch).ends:
            norm = global_grad_norm(trainer.strategy)
            if norm is not None:
                self.record(trainer, pl_module, norm)

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule, norm: torch.Tensor) -> bool:
        """Log a finite norm, or count a skipped step and stop after too many in a row; returns
        whether the norm was finite."""
        if torch.isfinite(norm):
            self.in_a_row = 0
            pl_module.log("train/grad_norm", norm, batch_size=1)
            return True
        self.in_a_row += 1
        self.total += 1
        pl_module.log("train/nonfinite_steps_skipped", float(self.total), batch_size=1)
        step = trainer.global_step
        log.warning("non-finite loss or gradient at step %d: optimizer step skipped (%d in a row)", step, self.in_a_row)
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteTrainingError(
                f"{self.in_a_row} optimizer steps in a row had a non-finite loss or gradient norm "
                f"(up to step {step}); stopped. The last checkpoint was saved before them: lower the "
                "learning rate or check the data, then resume with --ckpt_path last"
            )
        return False
