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


LIGHTNINGS_DIRPATH_NOTICE = "The dirpath has changed"


def test_a_moved_run_resumes_with_its_best_checkpoint_bookkeeping(micro_model_dir, digit_pages, tmp_path):
    sections = {"trainer": {"limit_val_batches": 1, "val_check_interval": 2}, "checkpoint": {"every_n_train_steps": 2}}
    config = str(fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run", **sections))
    trained = run_executable("fit", "--config", config, "--trainer.max_steps", "4")
    assert trained.returncode == 0, trained.stderr[-3000:]
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)

    resumed = run_executable(
        "fit", "--config", config, "--trainer.default_root_dir", str(moved), "--trainer.max_steps", "8", "--ckpt_path", "last"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert LIGHTNINGS_DIRPATH_NOTICE not in resumed.stderr
    # The run goes on writing its own last.ckpt (not a last-v1.ckpt beside it, which the next
    # `--ckpt_path last` would pass over for the old last.ckpt, losing the steps since the move).
    assert torch.load(moved / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    assert not list((moved / "checkpoints").glob("last-v*"))
    # The best checkpoint from before the move is still the one to beat, and still the one replaced.
    assert len(list((moved / "checkpoints").glob("best-*.ckpt"))) == 1
    best = torch.load(moved / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["BestCheckpoint"]
    assert set(best["best_k_models"]) == {best["best_model_path"]}
    assert best["best_model_path"].startswith(str(moved / "checkpoints"))

    # Reading pages with a training checkpoint somewhere else has no checkpoint bookkeeping to keep.
    pages = digit_pages / "images"
    read = run_executable(
        "predict", "--config", config, "--ckpt_path", str(moved / "checkpoints" / "last.ckpt"),
        "--trainer.default_root_dir", str(tmp_path / "reading"), "--data.predict_input", str(pages),
    )  # fmt: skip
    assert read.returncode == 0, read.stderr[-3000:]
    assert LIGHTNINGS_DIRPATH_NOTICE not in read.stderr
    assert (tmp_path / "reading" / "predict" / "predictions.jsonl").is_file()
