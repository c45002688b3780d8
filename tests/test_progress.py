"""What the user sees while `fit` runs."""

import lightning as L
import pytest
from lightning.pytorch.demos.boring_classes import BoringModel

from got_lightning.progress import GotProgressBar


@pytest.mark.parametrize("max_epochs, expected", [(-1, "Epoch 4"), (6, "Epoch 4/5")])
def test_the_epoch_shows_a_bound_only_when_there_is_one(max_epochs, expected, tmp_path):
    bar = GotProgressBar()
    trainer = L.Trainer(max_epochs=max_epochs, max_steps=3, callbacks=[bar], logger=False, default_root_dir=tmp_path,
                        enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(BoringModel())
    assert bar._get_train_description(4).strip() == expected
