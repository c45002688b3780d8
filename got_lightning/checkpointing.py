"""Run checkpoints: a fixed folder under the run directory, a last checkpoint always left behind,
and `--ckpt_path last` resolved to the newest complete checkpoint there."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

CHECKPOINT_DIR = "checkpoints"
LAST_NAME = "last.ckpt"


def checkpoint_dir(default_root_dir: str | Path) -> Path:
    return Path(default_root_dir) / CHECKPOINT_DIR


def find_last_checkpoint(default_root_dir: str | Path) -> Path | None:
    """`last.ckpt` of a run directory, else its newest checkpoint, unless a SLURM requeue checkpoint
    (`hpc_ckpt_N.ckpt` in the run directory) is newer; None when there is none. Checkpoints are
    renamed into place when complete, so every candidate is whole. (DeepSpeed checkpoints are
    directories named like files.)"""
    folder = checkpoint_dir(default_root_dir)
    candidates = list(folder.glob("*.ckpt"))
    if (folder / LAST_NAME).exists():
        candidates = [folder / LAST_NAME]
    candidates += Path(default_root_dir).glob("hpc_ckpt_*.ckpt")
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


class RunDirCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` writing to `<trainer.default_root_dir>/checkpoints` unless `dirpath` is set,
    so every run of a config finds its checkpoints in the same place whatever logger version it gets."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(checkpoint_dir(trainer.default_root_dir))
        super().setup(trainer, pl_module, stage)


class BestCheckpoint(RunDirCheckpoint):
    """Keeps the checkpoint with the lowest held-out CER seen so far (`best-step=N-cer=X.ckpt`)."""

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str | None = None,
        monitor: str = "val/cer",
        mode: str = "min",
        save_top_k: int = 1,
        auto_insert_metric_name: bool = False,
        save_on_train_epoch_end: bool | None = False,
        **kwargs,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename or "best-step={step}-cer={val/cer:.4f}",
            monitor=monitor,
            mode=mode,
            save_top_k=save_top_k,
            auto_insert_metric_name=auto_insert_metric_name,
            save_on_train_epoch_end=save_on_train_epoch_end,
            **kwargs,
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Validation without generation (`model.val_generate: false`) has no CER to rank by.
        if self.monitor in trainer.callback_metrics:
            super().on_validation_end(trainer, pl_module)


class RunCheckpoint(RunDirCheckpoint):
    """Periodic run checkpoints, saving the last one also when training ends between two
    `every_n_train_steps` saves."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step and not trainer.sanity_checking:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
