"""Preflight: a run that cannot succeed fails before its first step, naming the problem."""

import json
import shutil

import pytest
import torch

from got_lightning.cli import main
from got_lightning.training.preflight import PreflightError, check_free_space, checkpoint_bytes
from tests.training_helpers import fit_config


def test_unreadable_annotation_file_is_named(micro_model_dir, digit_pages, tmp_path, capsys):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    missing = tmp_path / "nowhere" / "data.json"
    datasets = json.dumps([{"name": "lost", "annotations": str(missing)}])
    assert main(["fit", "--config", str(config), "--data.datasets", datasets]) == 2
    error = capsys.readouterr().err
    assert "dataset 'lost'" in error and str(missing) in error and "cannot be read" in error
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_missing_relative_file_is_not_taken_for_a_dataset_id(micro_model_dir, digit_pages, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    datasets = json.dumps([{"name": "typo", "annotations": "data/train.jsonl"}])  # looks like org/name
    assert main(["fit", "--config", str(config), "--data.datasets", datasets]) == 2
    assert "dataset 'typo': annotations data/train.jsonl cannot be read: No such file" in capsys.readouterr().err


def test_too_little_disk_for_the_kept_checkpoints_is_refused(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_free_space(tmp_path, free // 2)
    with pytest.raises(PreflightError, match=r"GiB free but the checkpoints this run keeps need about"):
        check_free_space(tmp_path, free + 2**40)


def test_checkpoint_estimate_counts_weights_and_both_adam_moments(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2", "--checkpoint.every_n_train_steps", "2"]) == 0
    saved = (tmp_path / "run" / "checkpoints" / "last.ckpt").stat().st_size
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    unique = {t.untyped_storage().data_ptr(): t.numel() for t in state["state_dict"].values()}  # tied weights once
    trainable = sum(unique.values())
    # The estimate is the checkpoint's bulk: within 10% of the real file.
    assert abs(checkpoint_bytes(trainable) - saved) < 0.1 * saved
