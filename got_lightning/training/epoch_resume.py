"""Resuming at an epoch boundary continues with the right epoch.

Lightning (2.6) resumes a checkpoint written after an epoch's last batch (a step checkpoint that
falls there, or an epoch-end `last.ckpt`) through a "restarted mid-epoch" path that never marks the
next epoch as started. Its epoch counter then runs one behind its progress record: the run skips an
epoch number (so every later epoch gets another epoch's data order), and a checkpoint written later
in that epoch resumes as if the epoch had not begun. Together with `WindowLoader` (whose state
after an epoch's last batch resumes into a fresh epoch) this callback keeps a resumed run on the
epochs, data order and steps of an uninterrupted one.

It also restores the data position when something asked for `trainer.estimated_stepping_batches`
before the checkpoint was read (a learning-rate schedule over `max_epochs` does): that builds the
train loader early, and Lightning then never hands it the checkpoint's loader state, so the resumed
epoch would start again from its first batch.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


def at_window_boundary(trainer: L.Trainer) -> bool:
    """Whether the last training micro-batch ended an accumulation window (the optimizer stepped):
    the only place a checkpoint holds everything a resume needs (accumulated gradients are not saved)."""
    return not trainer.fit_loop.epoch_loop._should_accumulate()


class ExactEpochResume(L.Callback):
    """Repairs the fit loop's epoch progress on load and at the first batch of a resumed epoch,
    and moves batch-counted validation (`val_check_interval: N`) onto accumulation-window ends, so
    the checkpoints validation writes are resumable exactly."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        loop = checkpoint.get("loops", {}).get("fit_loop")
        if not loop:
            return
        epochs, batches = loop["epoch_progress"], loop["epoch_loop.batch_progress"]
        if batches["total"]["processed"] != batches["total"]["ready"]:
            return
        after_last_batch = batches.get("is_last_batch")
        # Training that stopped mid-epoch (max_steps, a stop request) and saved when it ended: Lightning
        # had closed the epoch as if it were finished, so the resume would skip the rest of it.
        closed_mid_epoch = not after_last_batch and epochs["total"]["completed"] == epochs["total"]["started"] > 0
        if not (after_last_batch or closed_mid_epoch):
            return
        # Restore each as a checkpoint written right after its last batch, whose resume is exact
        # (with the repairs here for the epoch-end case).
        for kind in ("total", "current"):
            epochs[kind]["processed"] = epochs[kind]["completed"] = epochs[kind]["started"] - 1
            batches[kind]["completed"] = batches[kind]["processed"] - 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        window, every = trainer.accumulate_grad_batches, trainer.val_check_batch
        if isinstance(every, int) and every % window:
            trainer.val_check_batch = math.ceil(every / window) * window
            if trainer.is_global_zero:
                log.warning(
                    "validating every %d micro-batches instead of %d: a multiple of accumulate_grad_batches=%d, "
                    "so validation and its checkpoints fall where the optimizer steps",
                    trainer.val_check_batch,
                    every,
                    window,
                )
        loop = trainer.fit_loop
        if loop._combined_loader_states_to_load and loop._combined_loader is not None:
            loop._load_combined_loader_states()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        progress = trainer.fit_loop.epoch_progress
        if progress.current.ready == progress.current.processed:  # a running epoch not marked started
            progress.increment_ready()
            progress.increment_started()
