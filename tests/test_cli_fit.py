"""`got-lightning fit|validate` through LightningCLI on the micro model: resume, errors, overrides."""

import json
import shutil

import pytest
import torch

from got_lightning.cli import main
from tests.helpers import run_executable
from tests.training_helpers import fit_config


def trained_state(root):
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint


def test_two_n_steps_equal_n_steps_resumed_to_two_n(micro_model_dir, digit_pages, tmp_path):
    # 21 training pages, batch 2, accumulation 2: 6 optimizer steps per epoch (the last one on a
    # partial window); N = 4 is mid-epoch and 2N = 8 runs into the second epoch.
    common = {"trainer": {"accumulate_grad_batches": 2, "gradient_clip_val": 1.0}, "model": {"lr_schedule_steps": 8}}
    straight = fit_config(tmp_path / "a.yaml", digit_pages, micro_model_dir, tmp_path / "a", **common)
    halves = fit_config(tmp_path / "b.yaml", digit_pages, micro_model_dir, tmp_path / "b", **common)
    assert main(["fit", "--config", str(straight), "--trainer.max_steps", "8"]) == 0
    assert main(["fit", "--config", str(halves), "--trainer.max_steps", "4"]) == 0
    first_half = trained_state(tmp_path / "b")
    assert first_half["global_step"] == 4
    assert main(["fit", "--config", str(halves), "--trainer.max_steps", "8", "--ckpt_path", "last"]) == 0

    a, b = trained_state(tmp_path / "a"), trained_state(tmp_path / "b")
    assert a["global_step"] == b["global_step"] == 8
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
        assert not torch.equal(first_half["state_dict"][name], tensor) or "vision_tower" in name or "rel_pos" in name
    for state_a, state_b in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        torch.testing.assert_close(state_b["exp_avg"], state_a["exp_avg"], rtol=1e-5, atol=1e-7)
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"] == 8


def test_a_run_stopping_between_saves_still_leaves_last(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "3", "--checkpoint.every_n_train_steps", "2"]) == 0
    assert trained_state(tmp_path / "run")["global_step"] == 3


def test_cli_overrides_reach_the_module(micro_model_dir, digit_pages, tmp_path, capsys):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--model.freeze_vision_tower", "false", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "freeze_vision_tower: false" in printed
    assert "use_distributed_sampler: false" in printed
    assert f"model_path: {micro_model_dir}" in printed


def test_user_mistakes_get_one_clear_message(micro_model_dir, digit_pages, tmp_path, capsys):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "fresh")
    assert main(["fit", "--config", str(config), "--ckpt_path", "last"]) == 2
    assert "--ckpt_path last: no complete checkpoint under" in capsys.readouterr().err

    assert main(["fit", "--config", str(config), "--model.model_path", str(tmp_path / "missing")]) == 2
    error = capsys.readouterr().err
    assert "missing" in error and "does not exist" in error and "Traceback" not in error

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--model.freeze_tower", "true"])
    assert exit_info.value.code == 2
    assert "freeze_tower" in capsys.readouterr().err

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["fit", "--config", str(config), "--trainer.default_root_dir", str(blocker / "run")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_a_broken_training_image_is_skipped_not_fatal(micro_model_dir, digit_pages, tmp_path):
    pages = tmp_path / "pages"
    shutil.copytree(digit_pages, pages)
    for image in sorted((pages / "images").iterdir())[:3]:
        image.write_bytes(b"truncated scan")
    config = fit_config(
        tmp_path / "c.yaml",
        pages,
        micro_model_dir,
        tmp_path / "run",
        trainer={
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path / "logs")}},
            "log_every_n_steps": 1,
        },
    )
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "12"]) == 0
    assert trained_state(tmp_path / "run")["global_step"] == 12
    metrics = (next((tmp_path / "logs").rglob("metrics.csv"))).read_text(encoding="utf-8")
    assert "train/skipped_samples" in metrics.splitlines()[0]


@pytest.mark.slow
def test_checkpoints_fall_on_accumulation_window_ends_and_resume_exactly(micro_model_dir, digit_pages, tmp_path, caplog):
    # Accumulation 2; validation asked every 3 micro-batches (moved to every 4), and also counted
    # across epochs (11 micro-batches per epoch end on a partial window, so later multiples of 4
    # fall mid-window: those saves are skipped). Every checkpoint written must resume exactly.
    common = {
        "trainer": {
            "accumulate_grad_batches": 2,
            "gradient_clip_val": 1.0,
            "limit_val_batches": 1,
            "val_check_interval": 3,
            "check_val_every_n_epoch": None,
        },
        "model": {"lr_schedule_steps": 12},
        "checkpoint": {"save_top_k": -1},
    }
    run = tmp_path / "run"
    config = fit_config(tmp_path / "a.yaml", digit_pages, micro_model_dir, run, **common)
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "12"]) == 0
    assert "validating every 4 micro-batches instead of 3" in caplog.text
    saved = sorted((run / "checkpoints").glob("*.ckpt"))
    assert any(path.name.startswith("best-") for path in saved)
    for path in saved:
        loader = torch.load(path, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
        assert loader["skip"] == 0, path.name  # written where a window ended

    best = next(path for path in saved if path.name.startswith("best-"))
    resumed = fit_config(tmp_path / "b.yaml", digit_pages, micro_model_dir, tmp_path / "resumed", **common)
    assert main(["fit", "--config", str(resumed), "--trainer.max_steps", "12", "--ckpt_path", str(best)]) == 0
    straight, again = trained_state(run)["state_dict"], trained_state(tmp_path / "resumed")["state_dict"]
    for name, tensor in straight.items():
        torch.testing.assert_close(again[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_a_run_whose_every_training_image_is_unreadable_stops_with_the_reason(micro_model_dir, digit_pages, tmp_path):
    # A wrong image_root: every record is skipped, so the run would train on nothing yet finish.
    datasets = [{"name": "digits", "annotations": str(digit_pages / "data.json"), "image_root": str(tmp_path / "elsewhere")}]
    config = fit_config(
        tmp_path / "c.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / "run",
        data={"datasets": datasets},
        model={"max_empty_steps": 3},
    )
    result = run_executable("fit", "--config", str(config), "--trainer.max_steps", "20")
    assert result.returncode == 2, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("got-lightning: error: nothing to train on: no train sample of 24 record(s) can be read")
    assert "x image file not found" in last_line and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before the first step


def test_a_run_whose_readable_samples_run_out_stops_after_max_empty_steps(micro_model_dir, digit_pages, tmp_path):
    # One readable record of 24: the run starts (there is something to train on), then meets
    # optimizer steps with no readable sample at all and stops after max_empty_steps of them.
    records = json.loads((digit_pages / "data.json").read_text())
    for record in records[1:]:
        record["image"] = "missing/" + record["image"]
    annotations = tmp_path / "mostly-missing.json"
    annotations.write_text(json.dumps(records))
    datasets = [{"name": "digits", "annotations": str(annotations), "image_root": str(digit_pages)}]
    config = fit_config(
        tmp_path / "c.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / "run",
        data={"datasets": datasets, "val_fraction": 0.0},
        model={"max_empty_steps": 3},
    )
    result = run_executable("fit", "--config", str(config), "--trainer.max_steps", "20")
    assert result.returncode == 2, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("got-lightning: error: 3 optimizer steps in a row had no training sample that could be read")
    assert "x image file not found" in last_line and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("max_epochs", [-1, 1])
def test_a_last_checkpoint_written_where_max_steps_ended_mid_epoch_resumes_mid_epoch(
    max_epochs, micro_model_dir, digit_pages, tmp_path
):
    # No periodic save falls on step 3: last.ckpt is written when training ends there, after which
    # Lightning counts the epoch (11 batches) as finished although only 3 of its batches ran.
    common = {
        "trainer": {"max_epochs": max_epochs},
        "model": {"lr_schedule_steps": 6},
        "checkpoint": {"every_n_train_steps": 100},
    }
    straight = fit_config(tmp_path / "a.yaml", digit_pages, micro_model_dir, tmp_path / "a", **common)
    halves = fit_config(tmp_path / "b.yaml", digit_pages, micro_model_dir, tmp_path / "b", **common)
    assert main(["fit", "--config", str(straight), "--trainer.max_steps", "6"]) == 0
    assert main(["fit", "--config", str(halves), "--trainer.max_steps", "3"]) == 0
    assert main(["fit", "--config", str(halves), "--trainer.max_steps", "6", "--ckpt_path", "last"]) == 0
    a, b = trained_state(tmp_path / "a"), trained_state(tmp_path / "b")
    assert a["global_step"] == b["global_step"] == 6
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
