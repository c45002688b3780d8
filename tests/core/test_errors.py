"""The one rule for errors, through the executable: a user's mistake is one line and exit status 2;
an internal error keeps its traceback, with where to report it, and exit status 1 (a bug raised as a
ValueError, as transformers raises one, used to be reported as if the user's input were wrong)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from got_lightning.core.errors import BUG_HINT, InputNotFoundError, SettingError, UserError, one_line
from tests.helpers import run_executable
from tests.training_helpers import fit_config

pytestmark = pytest.mark.slow


def with_fault(tmp_path: Path, code: str) -> dict[str, str]:
    """An environment whose Python runs `code` at start-up (sitecustomize): the fault is injected
    into the code the command runs, not into the error reporting under test."""
    folder = tmp_path / "fault"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(code, encoding="utf-8")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


BROKEN_TRAINING_STEP = """
import got_lightning.module as module

def training_step(self, batch, batch_idx):
    raise ValueError("Image features and image tokens do not match, tokens: 2048, features: 128")

module.GotLightningModule.training_step = training_step
"""


def test_a_mistake_in_fit_is_one_line_and_exit_2(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    done = run_executable("fit", "--config", str(config), "--model.learning_rate", "-1")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and BUG_HINT not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "got-lightning: error: model.learning_rate must be above 0, got -1.0"


def test_an_internal_value_error_in_fit_keeps_its_traceback(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    done = run_executable("fit", "--config", str(config), env=with_fault(tmp_path, BROKEN_TRAINING_STEP))
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "in training_step" in done.stderr
    assert "ValueError: Image features and image tokens do not match" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == BUG_HINT


def test_an_internal_error_in_a_light_command_keeps_its_traceback(tmp_path):
    fault = "import got_lightning.commands.score_command as score\nscore.run = lambda args: {}['no such key']\n"
    done = run_executable("score", "--help", env=with_fault(tmp_path, fault))
    assert done.returncode == 0  # help is untouched
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"prediction": "a", "reference": "a"}\n', encoding="utf-8")
    done = run_executable("score", str(predictions), env=with_fault(tmp_path, fault))
    assert done.returncode == 1, done.stderr
    assert "KeyError: 'no such key'" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == BUG_HINT


def test_a_missing_file_in_a_light_command_is_one_line(tmp_path):
    done = run_executable("compare", str(tmp_path / "none.jsonl"), str(tmp_path / "other.jsonl"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "none.jsonl" in done.stderr


def test_every_user_error_is_a_user_error_and_keeps_its_builtin_base():
    assert issubclass(SettingError, ValueError) and issubclass(SettingError, UserError)
    assert issubclass(InputNotFoundError, FileNotFoundError) and issubclass(InputNotFoundError, UserError)
    assert not issubclass(ValueError, UserError)


def test_a_user_error_raised_in_a_dataloader_worker_is_still_one_line():
    from torch.utils.data import DataLoader, Dataset

    class Strict(Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int):
            raise SettingError("dataset 'd' record 0: no 'image' (strict: true)")

    with pytest.raises(SettingError) as raised:
        next(iter(DataLoader(Strict(), num_workers=1)))
    assert "Original Traceback" in str(raised.value)
    assert one_line(raised.value) == "dataset 'd' record 0: no 'image' (strict: true)"
