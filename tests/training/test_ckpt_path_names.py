"""`--ckpt_path last` and `--ckpt_path best` mean the same for fit, validate, test and predict:
the run's newest complete checkpoint, or its best by held-out CER, named on stderr; one clear
error when there is none; never a silent fall-back to the base weights."""

import json

import pytest
import torch

from got_lightning.cli import main
from got_lightning.training.checkpoints import COMPLETE_MARK, find_best_checkpoint, find_last_checkpoint
from tests.helpers import run_executable
from tests.training_helpers import fit_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ckpt_path_names")]  # one worker builds the module's shared runs


def metrics(folder):
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, micro_model_dir, digit_pages):
    """A 4-step run that validated at steps 2 and 4 (so it has last.ckpt and a best checkpoint)."""
    folder = tmp_path_factory.mktemp("named")
    config = fit_config(
        folder / "run.yaml",
        digit_pages,
        micro_model_dir,
        folder / "run",
        trainer={"limit_val_batches": 1.0, "limit_test_batches": 1.0, "val_check_interval": 2, "check_val_every_n_epoch": None},
        model={"learning_rate": 3e-3},
    )
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "4"]) == 0
    return config, folder / "run"


def test_validate_last_scores_the_trained_model_not_the_base(trained, tmp_path):
    config, run = trained
    result = run_executable("validate", "--config", str(config), "--ckpt_path", "last", "--trainer.default_root_dir", str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"--ckpt_path last: using {run / 'checkpoints' / 'last.ckpt'}" in result.stderr
    assert "no last checkpoint available" not in result.stderr + result.stdout
    after = metrics(run)
    at_step_4 = metrics(run / "validation" / "step-000004")
    assert after["loss"] == pytest.approx(at_step_4["loss"], rel=1e-5) and after["cer"] == at_step_4["cer"]
    assert after["global_step"] == 4

    base = run_executable("validate", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "base"))
    assert base.returncode == 0, base.stderr[-2000:]
    assert metrics(tmp_path / "base")["loss"] != pytest.approx(after["loss"], rel=1e-3)


@pytest.mark.slow
def test_test_best_and_predict_last_use_the_named_checkpoints(trained, digit_pages, tmp_path):
    config, run = trained
    steps = {step: metrics(run / "validation" / f"step-{step:06d}")["cer"] for step in (2, 4)}
    best_step = min(steps, key=lambda step: (steps[step], step))  # the first of equals is kept
    result = run_executable("test", "--config", str(config), "--ckpt_path", "best", "--trainer.default_root_dir", str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    named = find_best_checkpoint(run)
    assert named.name.startswith(f"best-step={best_step}-") and f"--ckpt_path best: using {named}" in result.stderr
    assert metrics(run)["cer"] == pytest.approx(steps[best_step]) and metrics(run)["global_step"] == best_step

    output = tmp_path / "predictions.jsonl"
    result = run_executable(
        "predict",
        "--config",
        str(config),
        "--ckpt_path",
        "last",
        "--trainer.default_root_dir",
        str(run),
        "--data.predict_input",
        str(digit_pages / "images"),
        "--predict_output.path",
        str(output),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"--ckpt_path last: using {run / 'checkpoints' / 'last.ckpt'}" in result.stderr
    assert len(output.read_text(encoding="utf-8").splitlines()) == 24


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize("name", ["last", pytest.param("best", marks=pytest.mark.slow)])
def test_no_such_checkpoint_is_one_clear_error(subcommand, name, micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "fresh")
    result = run_executable(subcommand, "--config", str(config), "--ckpt_path", name, "--data.predict_input", str(digit_pages))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"got-lightning: error: --ckpt_path {name}: no ")
    assert "Traceback" not in result.stderr


def whole_file(path, step):
    torch.save({"global_step": step}, path)
    return path


def whole_directory(path, step):
    """A ZeRO checkpoint directory as one rank leaves it, with its completion mark."""
    (path / "checkpoint").mkdir(parents=True, exist_ok=True)
    torch.save({"step": step}, path / "checkpoint" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    (path / COMPLETE_MARK).write_text(json.dumps({"global_step": step, "world_size": 1}))
    return path


def test_last_skips_incomplete_deepspeed_directories_and_prefers_last(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    whole_file(folder / "epoch=0-step=2.ckpt", 2)
    half = folder / "epoch=0-step=4.ckpt"
    (half / "checkpoint").mkdir(parents=True)  # a directory whose ranks never all finished
    assert find_last_checkpoint(tmp_path) == folder / "epoch=0-step=2.ckpt"
    whole_directory(half, 4)
    assert find_last_checkpoint(tmp_path) == half
    (folder / "last.ckpt").mkdir()
    assert find_last_checkpoint(tmp_path) == half  # last.ckpt without its mark is not complete
    whole_directory(folder / "last.ckpt", 4)
    assert find_last_checkpoint(tmp_path) == folder / "last.ckpt"


def test_a_zero_directory_missing_a_ranks_shard_is_passed_over(tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    whole_file(folder / "epoch=0-step=2.ckpt", 2)
    shards = whole_directory(folder / "last.ckpt", 4)
    (shards / COMPLETE_MARK).write_text(json.dumps({"global_step": 4, "world_size": 2}))  # rank 1's shard is lost
    assert find_last_checkpoint(tmp_path) == folder / "epoch=0-step=2.ckpt"
    assert "1 optimizer shard(s) for the 2 rank(s) that saved it" in capsys.readouterr().err
