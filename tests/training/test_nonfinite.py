"""The non-finite guard: a NaN step is skipped without touching weights or optimizer state; K in a
row stop the run with a clear error and leave the last checkpoint with good weights."""

import lightning as L
import pytest
import torch

from got_lightning.module import GotLightningModule
from got_lightning.training.checkpoints import RunCheckpoint
from got_lightning.training.nonfinite import NonFiniteGuard, NonFiniteTrainingError
from tests.training_helpers import datamodule, trainer


class PoisonedLoss(GotLightningModule):
    """Fault injection: the loss of the listed optimizer steps (and all from `poison_from`) is NaN."""

    def __init__(self, *args, poisoned_steps=(), poison_from=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.poisoned_steps, self.poison_from = set(poisoned_steps), poison_from

    def training_step(self, batch, batch_idx):
        output = super().training_step(batch, batch_idx)
        step = self.trainer.global_step
        if step in self.poisoned_steps or (self.poison_from is not None and step >= self.poison_from):
            output["loss"] = output["loss"] * float("nan")
        return output


class Snapshots(L.Callback):
    """Trainable weights after every optimizer step, keyed by the global step it ended on."""

    def __init__(self):
        self.after = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after[trainer.global_step] = torch.cat(
            [p.detach().flatten().clone() for p in pl_module.parameters() if p.requires_grad]
        )


def test_a_nan_step_is_skipped_and_training_goes_on(micro_model_dir, digit_pages, tmp_path):
    module = PoisonedLoss(str(micro_model_dir), learning_rate=1e-3, poisoned_steps={2, 3})
    snapshots = Snapshots()
    run = trainer(tmp_path, max_steps=6, callbacks=[snapshots])
    run.fit(module, datamodule(digit_pages, micro_model_dir))
    guard = next(callback for callback in run.callbacks if isinstance(callback, NonFiniteGuard))
    assert guard.total == 2 and guard.in_a_row == 0
    assert torch.equal(snapshots.after[4], snapshots.after[2])  # steps 2 and 3 changed nothing
    assert not torch.equal(snapshots.after[5], snapshots.after[4])  # step 4 trained again
    assert torch.isfinite(snapshots.after[6]).all()


def test_k_nan_steps_in_a_row_stop_with_a_clear_error(micro_model_dir, digit_pages, tmp_path):
    module = PoisonedLoss(str(micro_model_dir), learning_rate=1e-3, poison_from=3, max_nonfinite_steps=3)
    snapshots = Snapshots()
    checkpoints = RunCheckpoint(every_n_train_steps=1, save_last=True)
    run = trainer(tmp_path, max_steps=20, callbacks=[snapshots, checkpoints], enable_checkpointing=True)
    with pytest.raises(NonFiniteTrainingError, match="3 optimizer steps in a row had a non-finite"):
        run.fit(module, datamodule(digit_pages, micro_model_dir))
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    good = snapshots.after[3]
    weights = torch.cat([saved["state_dict"][name].flatten() for name, p in module.named_parameters() if p.requires_grad])
    assert torch.equal(weights, good)
