"""What the user sees while `fit` runs."""

import io

import lightning as L
import pytest
import yaml
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger

from got_lightning.training.progress import GotProgressBar
from tests.helpers import run_executable
from tests.training_helpers import fit_config


@pytest.mark.parametrize("max_epochs, expected", [(-1, "Epoch 4"), (6, "Epoch 4/5")])
def test_the_epoch_shows_a_bound_only_when_there_is_one(max_epochs, expected, tmp_path):
    bar = GotProgressBar()
    trainer = L.Trainer(
        max_epochs=max_epochs,
        max_steps=3,
        callbacks=[bar],
        logger=False,
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(BoringModel())
    assert bar._get_train_description(4).strip() == expected


@pytest.mark.slow
def test_switching_the_progress_bar_and_summary_off_on_the_command_line_drops_ours(micro_model_dir, digit_pages, tmp_path):
    config = yaml.safe_load(fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run").read_text())
    del config["trainer"]["callbacks"], config["trainer"]["enable_progress_bar"]  # the defaults, as a user's config has them
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = run_executable(
        "fit",
        "--config",
        str(tmp_path / "c.yaml"),
        "--trainer.max_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch 0" not in result.stdout
    assert "Trainable params" not in result.stdout


class _LogsASmallLearningRate(BoringModel):
    def training_step(self, batch, batch_idx):
        self.log("lr", 1.25e-4, prog_bar=True)
        self.log("train/loss", 1234.5678, prog_bar=True)
        return super().training_step(batch, batch_idx)


def test_the_bar_shows_small_numbers_and_no_logger_version(tmp_path):
    screen = io.StringIO()
    bar = GotProgressBar(console_kwargs={"file": screen, "force_terminal": True, "width": 200})
    trainer = L.Trainer(max_steps=3, callbacks=[bar], logger=CSVLogger(tmp_path), default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(_LogsASmallLearningRate())
    shown = screen.getvalue()
    assert "lr: 0.000125" in shown and "train/loss: 1235" in shown
    assert "v_num" not in shown
