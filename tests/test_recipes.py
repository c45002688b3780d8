"""The shipped YAML recipes under configs/: each one parses, and the demo runs end to end."""

import importlib
import importlib.util
import json

import pytest
import yaml

from got_lightning.cli import main
from got_lightning.training.strategies import GotDeepSpeedStrategy
from tests.helpers import REPO_ROOT, run_executable

CONFIGS = REPO_ROOT / "configs"


def printed_config(recipe: str, capsys) -> dict:
    """`fit --print_config` of a recipe, parsed (DeepSpeed's import may log to stdout first)."""
    with pytest.raises(SystemExit) as printed:
        main(["fit", "--config", str(CONFIGS / recipe), "--print_config"])
    assert printed.value.code == 0
    out = capsys.readouterr().out
    return yaml.safe_load(out[out.index("# lightning") :])


@pytest.mark.parametrize("recipe", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_every_recipe_parses(recipe, capsys):
    config = printed_config(recipe, capsys)
    assert config["model"]["model_path"] and config["data"]["datasets"]


def test_guji_recipe_is_the_user_story_run(capsys):
    config = printed_config("guji.yaml", capsys)
    trainer = config["trainer"]
    assert (trainer["devices"], trainer["precision"], trainer["accumulate_grad_batches"]) == (8, "bf16-mixed", 2)
    module_name, class_name = trainer["strategy"]["class_path"].rsplit(".", 1)
    assert getattr(importlib.import_module(module_name), class_name) is GotDeepSpeedStrategy
    zero = json.loads((CONFIGS.parent / trainer["strategy"]["init_args"]["config"]).read_text())
    assert zero["zero_optimization"]["stage"] == 2
    assert config["data"]["batch_size"] == 2 and config["data"]["model_max_length"] == 8192
    assert config["model"]["learning_rate"] == 2e-5 and config["model"]["gradient_checkpointing"]
    assert config["checkpoint"]["every_n_train_steps"] == 200


def journey_warning_rules():
    """The journey's rule for warning lines (tools/journey.py), so the demo here is held to it too."""
    spec = importlib.util.spec_from_file_location("journey", REPO_ROOT / "tools" / "journey.py")
    journey = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(journey)
    return journey.WARNING_LINE, journey.EXPECTED_WARNINGS


@pytest.mark.slow
def test_demo_recipe_builds_everything_and_trains_without_a_warning_line(tmp_path):
    overrides = ["--trainer.max_steps", "4", "--trainer.val_check_interval", "4"]
    result = run_executable("fit", "--config", str(CONFIGS / "demo.yaml"), *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    warning_line, expected = journey_warning_rules()
    unexpected = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if warning_line.search(line) and not any(rule.search(line) for rule in expected)
    ]
    assert not unexpected, "warnings a user cannot act on:\n" + "\n".join(unexpected)
    # Lightning's notes on how it configured itself around our defaults: nothing for the user to do.
    for notice in (
        "Trainer already configured with model summary",
        "will override existing callbacks",
        "v_num",
        "Loading weights",
    ):
        assert notice not in result.stdout + result.stderr, notice

    demo = tmp_path / "runs" / "demo"
    assert (demo / "model" / "model.safetensors").is_file()
    records = json.loads((demo / "data" / "data.json").read_text(encoding="utf-8"))
    assert len(records) == 600
    assert (demo / "run" / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((demo / "run" / "validation" / "step-000004" / "metrics.json").read_text())
    assert metrics["num_samples"] == 58 and metrics["cer"] >= 0


def test_the_dry_run_keeps_the_guji_recipe_and_changes_only_what_a_cpu_box_needs(capsys):
    def printed(*recipes: str) -> dict:
        with pytest.raises(SystemExit):
            main(["fit", *(arg for recipe in recipes for arg in ("--config", str(CONFIGS / recipe))), "--print_config"])
        out = capsys.readouterr().out
        return yaml.safe_load(out[out.index("# lightning") :])

    guji, dry = printed("guji.yaml"), printed("guji.yaml", "dry-run.yaml")
    for key in ("strategy", "precision", "accumulate_grad_batches", "gradient_clip_val", "max_epochs"):
        assert dry["trainer"][key] == guji["trainer"][key], key
    for key in ("batch_size", "eval_batch_size", "image_mode", "model_max_length", "group_by_length", "max_tiles"):
        assert dry["data"][key] == guji["data"][key], key
    for key in ("gradient_checkpointing", "optimizer", "learning_rate", "lr_scheduler", "warmup_ratio", "freeze_vision_tower"):
        assert dry["model"][key] == guji["model"][key], key
    assert dry["checkpoint"] == guji["checkpoint"]
    assert (dry["trainer"]["accelerator"], dry["trainer"]["devices"], dry["model"]["init_preset"]) == ("cpu", 2, "got")
