"""DeepSpeed configuration on CPU: upstream's ZeRO JSON files through Lightning's DeepSpeedStrategy."""

import json

import pytest

pytest.importorskip("deepspeed")

from got_lightning.training.strategies import DeepSpeedConfigError, GotDeepSpeedStrategy, resolve_auto
from tests.helpers import REPO_ROOT

ZERO = REPO_ROOT / "zero_config"


@pytest.mark.parametrize("name, stage", [("zero2.json", 2), ("zero3.json", 3)])
def test_zero_files_resolve_for_bf16(name, stage):
    raw = json.loads((ZERO / name).read_text())
    config = resolve_auto(raw, "bf16-mixed", micro_batch_size=2, hidden_size=1024, optimizer="adamw")
    assert config["bf16"]["enabled"] is True
    assert config["train_micro_batch_size_per_gpu"] == 2
    assert config["zero_optimization"]["stage"] == stage
    assert config["zero_optimization"]["reduce_bucket_size"] == 1024 * 1024
    assert "gradient_accumulation_steps" not in config
    assert "auto" not in json.dumps(config)
    assert raw["bf16"]["enabled"] == "auto", "the file's dict must not be modified"


def test_bnb_optimizers_are_allowed_and_fixed_accumulation_is_refused():
    config = resolve_auto({"zero_optimization": {"stage": 2}}, "bf16-mixed", 1, 64, "paged_adamw8bit")
    assert config["zero_allow_untested_optimizer"] is True
    with pytest.raises(DeepSpeedConfigError, match="accumulate_grad_batches"):
        resolve_auto({"gradient_accumulation_steps": 4}, "bf16-mixed", 1, 64, "adamw")
    with pytest.raises(DeepSpeedConfigError, match="remove the optimizer/scheduler section"):
        resolve_auto({"optimizer": {"type": "AdamW", "params": {"lr": 1e-5}}}, "bf16-mixed", 1, 64, "adamw")
    with pytest.raises(DeepSpeedConfigError, match="zero_optimization.stage3_max_live_parameters"):
        resolve_auto({"zero_optimization": {"stage3_max_live_parameters": "auto"}}, "bf16-mixed", 1, 64, "adamw")


def test_strategy_builds_from_the_json_file_and_keeps_frozen_weights_out():
    strategy = GotDeepSpeedStrategy(config=str(ZERO / "zero2.json"))
    assert strategy.exclude_frozen_parameters is True
    assert strategy.config["zero_optimization"]["stage"] == 2
