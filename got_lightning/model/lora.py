"""Optional LoRA adapters on the language model (peft), merged into plain weights at export."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from got_lightning.core.optional import require

DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraArgs:
    """LoRA on the language model's linear layers.

    Args:
        rank: Rank of the update matrices.
        alpha: Scaling numerator (the update is scaled by alpha / rank).
        dropout: Dropout on the LoRA input.
        target_modules: Names of the language model's linear layers to adapt.
    """

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))


def _peft():
    return require("peft", "LoRA")


def add_lora(model: nn.Module, args: LoraArgs) -> None:
    """Inject LoRA adapters in place into the language model only (the vision tower is never adapted)."""
    peft = _peft()
    names = "|".join(args.target_modules)
    config = peft.LoraConfig(
        r=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=args.dropout,
        target_modules=rf".*language_model.*\.({names})",
    )
    peft.inject_adapter_in_model(config, model)


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    lora_layer = _peft().tuners.lora.LoraLayer
    return [(name, module) for name, module in model.named_modules() if isinstance(module, lora_layer)]


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA adapter into its base layer and put the plain layer back; returns how many."""
    layers = lora_layers(model)
    for name, layer in layers:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.get_base_layer())
    return len(layers)
