"""A user's mistake is one line, exit status 2, naming the key or file, never a traceback or a usage
dump: config keys, checkpoints of another model, pickled payloads, compare's inputs; and
Lightning's own `trainer.enable_checkpointing: false` is honoured."""

from __future__ import annotations

import json

import pytest
import torch

from got_lightning.cli import main
from got_lightning.model.loading import init_model_dir
from tests.reports.test_comparison import row, write_predictions
from tests.training_helpers import fit_config


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert "Traceback" not in error and "usage:" not in error, error
    return error.strip().splitlines()[-1]


def exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # the config parser exits itself
        return stop.code


@pytest.fixture
def config(micro_model_dir, digit_pages, tmp_path):
    return fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run", checkpoint={"every_n_train_steps": 2})


@pytest.mark.parametrize(
    "argv, named",
    [
        (
            ["--data.datasets", json.dumps([{"name": "d", "annotations": "x.json", "imge_root": "x"}])],
            "data.datasets: unknown key 'imge_root'",
        ),
        (["--trainer.max_stepz", "3"], "unrecognized arguments: --trainer.max_stepz 3"),
        (["--trainer.max_steps", "many"], "trainer.max_steps:"),
        (["--model.learning_rate", "-0.001"], "model.learning_rate must be above 0, got -0.001"),
    ],
)
def test_config_mistakes_are_one_line_naming_the_key(config, capsys, argv, named):
    assert exit_status(["fit", "--config", str(config), *argv]) == 2
    line = one_line_error(capsys)
    assert line.startswith("got-lightning: error:") and named in line


def test_honours_trainer_enable_checkpointing_false(config, tmp_path, capsys):
    assert main(["fit", "--config", str(config), "--trainer.enable_checkpointing", "false"]) == 0
    assert "writes no checkpoint and cannot be resumed" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_checkpoint_of_another_model_or_with_pickled_code_is_one_line(config, tmp_path, capsys):
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2"]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    other = init_model_dir("tiny", tmp_path / "tiny", seed=0)
    assert main(["validate", "--config", str(config), "--model.model_path", str(other), "--ckpt_path", str(checkpoint)]) == 2
    line = one_line_error(capsys)
    assert "checkpoint does not fit this model" in line and "another preset or model_path" in line

    marker = tmp_path / "ran"
    state = torch.load(checkpoint, weights_only=True)
    state["payload"] = Payload(str(marker))
    payload = tmp_path / "payload.ckpt"
    torch.save(state, payload)
    for argv in (
        ["validate", "--config", str(config), "--ckpt_path", str(payload)],
        ["export", "--ckpt", str(payload), "--output", str(tmp_path / "out")],
    ):
        assert main(argv) == 2
        line = one_line_error(capsys)
        assert f"checkpoint {payload} holds pickled objects" in line and "nothing in it ran" in line
    assert not marker.exists()
    torch.load(payload, weights_only=False)  # what refusing it prevented
    assert marker.exists()


class Payload:
    """Unpickling it would create a file: code in a checkpoint."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_compare_names_folders_and_malformed_lines_and_keys_samples_by_dataset(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder without a predictions.jsonl" in one_line_error(capsys)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(row("a.png", "x", "x")) + "\n{not json\n", encoding="utf-8")
    assert main(["compare", str(broken), str(broken)]) == 2
    assert f"{broken} line 2: not valid JSON" in one_line_error(capsys)
    # One image name in two datasets is two samples, not one of them dropped.
    rows = [row("p1.png", "abc", "abx", dataset="guji"), row("p1.png", "xyz", "xyz", dataset="letters")]
    base, tuned = write_predictions(tmp_path / "base.jsonl", rows), write_predictions(tmp_path / "tuned.jsonl", rows)
    report = tmp_path / "report.json"
    assert main(["compare", str(base), str(tuned), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["shared_samples"] == 2
