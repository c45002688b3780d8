"""SIGTERM (cluster preemption) and Ctrl-C: finish the current optimizer step, save a resumable
checkpoint as `checkpoints/last.ckpt`, stop. A second Ctrl-C interrupts at once."""

from __future__ import annotations

import signal
import threading
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from got_lightning.core.run_dir import RunDir
from got_lightning.training.checkpoints import LAST_NAME, RunCheckpoint
from got_lightning.training.epoch_resume import at_window_boundary


class PreemptionCheckpoint(L.Callback):
    """Turns SIGTERM/SIGINT into a checkpoint at the next optimizer-step boundary and a clean stop.

    Args:
        enabled: Install the handlers during `fit`.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _request(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.requested == "SIGINT":
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.requested = None
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._request)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if not self.enabled:
            return
        # Every rank is at the same batch, so only step boundaries pay for the collective.
        if not at_window_boundary(trainer) or not trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False):
            return
        path = RunDir(trainer.default_root_dir).checkpoints / LAST_NAME
        trainer.save_checkpoint(path)
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, RunCheckpoint):
                callback.saved_elsewhere(trainer.global_step)
        rank_zero_info(
            f"{self.requested or 'stop signal'} received: saved {path} at step {trainer.global_step}; "
            "resume with --ckpt_path last"
        )
        trainer.should_stop = True
        self._restore()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
