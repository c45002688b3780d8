"""Our checkpoint callbacks keep one state key per run whatever their cadence: a run validated,
tested or resumed with another `every_n_train_steps` than it was trained with finds their state,
and Lightning has no callback to ask the user to add."""

from __future__ import annotations

import pytest
import torch

from got_lightning.training.checkpoints import BestCheckpoint, RunCheckpoint
from tests.helpers import run_executable
from tests.training_helpers import fit_config

pytestmark = pytest.mark.slow

LIGHTNINGS_NOTICE = "callbacks used to create the checkpoint"


def test_another_cadence_finds_the_checkpoint_callbacks_state(micro_model_dir, digit_pages, tmp_path):
    run = tmp_path / "run"
    config = str(fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, run, checkpoint={"every_n_train_steps": 5}))
    trained = run_executable("fit", "--config", config, "--trainer.max_steps", "2", "--checkpoint.every_n_train_steps", "2")
    assert trained.returncode == 0, trained.stderr[-3000:]
    states = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    assert {"RunCheckpoint", "BestCheckpoint"} <= set(states)
    assert states["RunCheckpoint"]["last_model_path"].endswith("last.ckpt")

    for command in ("validate", "test"):
        done = run_executable(command, "--config", config, "--ckpt_path", "last")
        assert done.returncode == 0, done.stderr[-3000:]
        assert LIGHTNINGS_NOTICE not in done.stderr, command
    resumed = run_executable("fit", "--config", config, "--trainer.max_steps", "4", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert LIGHTNINGS_NOTICE not in resumed.stderr


def test_state_keys_name_the_class_alone():
    assert RunCheckpoint(every_n_train_steps=2).state_key == RunCheckpoint(every_n_train_steps=7).state_key == "RunCheckpoint"
    assert BestCheckpoint().state_key == "BestCheckpoint"
