"""DeepSpeed through Lightning with upstream-style ZeRO JSON files (HF `"auto"` values resolved)."""

from __future__ import annotations

import copy
from typing import Any

from lightning.pytorch.strategies import DeepSpeedStrategy

AUTO = "auto"
BNB_OPTIMIZERS = ("adamw8bit", "paged_adamw8bit")


class DeepSpeedConfigError(ValueError):
    """A DeepSpeed JSON setting that Lightning or got-lightning controls."""


def resolve_auto(config: dict[str, Any], precision: str, micro_batch_size: int, hidden_size: int, optimizer: str) -> dict:
    """A copy of `config` with every `"auto"` value filled in the way the HF Trainer does, and the keys
    Lightning injects itself (gradient accumulation, clipping) removed when they were `"auto"`."""
    config = copy.deepcopy(config)
    accumulation = config.get("gradient_accumulation_steps")
    if accumulation == AUTO:
        del config["gradient_accumulation_steps"]
    elif accumulation is not None:
        raise DeepSpeedConfigError(
            "remove gradient_accumulation_steps from the DeepSpeed JSON: set trainer.accumulate_grad_batches instead"
        )
    if config.get("gradient_clipping") == AUTO:
        del config["gradient_clipping"]
    if config.get("train_batch_size") == AUTO:
        del config["train_batch_size"]
    if config.get("train_micro_batch_size_per_gpu") == AUTO:
        config["train_micro_batch_size_per_gpu"] = micro_batch_size
    for key, wanted in (("bf16", precision.startswith("bf16")), ("fp16", precision.startswith("16"))):
        if isinstance(config.get(key), dict) and config[key].get("enabled") == AUTO:
            config[key]["enabled"] = wanted
    zero = config.get("zero_optimization", {})
    sizes = {
        "reduce_bucket_size": hidden_size * hidden_size,
        "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "stage3_param_persistence_threshold": 10 * hidden_size,
    }
    for key, value in sizes.items():
        if zero.get(key) == AUTO:
            zero[key] = value
    left = [path for path, value in _walk(config) if value == AUTO]
    if left:
        raise DeepSpeedConfigError(f"cannot resolve 'auto' for {', '.join(left)} in the DeepSpeed JSON")
    if optimizer in BNB_OPTIMIZERS:
        config.setdefault("zero_allow_untested_optimizer", True)
    return config


def _walk(node: Any, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


class GotDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's `DeepSpeedStrategy` that accepts upstream's `zero_config/*.json` as they are:
    `"auto"` values are resolved from the trainer, the datamodule and the model before Lightning
    adds its own settings. Frozen parameters are kept out of checkpoints by default."""

    def __init__(self, *args: Any, exclude_frozen_parameters: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, exclude_frozen_parameters=exclude_frozen_parameters, **kwargs)

    def _format_config(self) -> None:
        module = self.lightning_module
        if self.config is not None and module is not None:
            datamodule = module.trainer.datamodule
            self.config = resolve_auto(
                self.config,
                precision=str(self.precision_plugin.precision),
                micro_batch_size=getattr(datamodule, "batch_size", 1),
                hidden_size=module.got.config.text_config.hidden_size,
                optimizer=module.hparams.get("optimizer", "adamw"),
            )
        super()._format_config()
