"""The training progress bar."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class GotProgressBar(RichProgressBar):
    """Lightning's rich progress bar, without the "Epoch 4/-2" it shows for open-ended runs
    (`max_epochs: -1`, training until `max_steps`): there the epoch has no upper bound to show."""

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"
