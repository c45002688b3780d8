"""RNG states in checkpoints: saved, loadable with weights_only=True, restored exactly."""

import io
import random

import numpy as np
import torch

from got_lightning.cli import main
from got_lightning.training.rng import capture_rng_states, restore_rng_states
from tests.training_helpers import fit_config


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_states_survive_a_weights_only_round_trip_and_restore_every_generator():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    buffer = io.BytesIO()
    torch.save({"rng_states": capture_rng_states()}, buffer)
    expected = draws()
    draws()
    buffer.seek(0)
    restore_rng_states(torch.load(buffer, weights_only=True)["rng_states"])
    assert draws() == expected


def test_resumable_checkpoints_carry_the_states(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2"]) == 0
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["rng_states"]["torch"].dtype == torch.uint8
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "3", "--ckpt_path", "last"]) == 0
