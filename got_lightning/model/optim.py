"""The optimizer settings as one group: decay/no-decay parameter groups with a rate per model part,
AdamW (or bitsandbytes' 8-bit AdamW), and the warmup + cosine/linear/constant schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from got_lightning.core.errors import SettingError
from got_lightning.core.optional import require

OptimizerName = Literal["adamw", "adamw8bit", "paged_adamw8bit"]
SchedulerName = Literal["cosine", "linear", "constant"]
PART_PREFIXES = {"vision": ".vision_tower.", "projector": ".multi_modal_projector."}


@dataclass(frozen=True)
class OptimizerArgs:
    """The optimizer and its schedule: the LightningModule's `optimizer`, `learning_rate`, ...,
    `lr_schedule_steps` options (documented there, kept flat in the config), grouped."""

    name: OptimizerName = "adamw"
    learning_rate: float = 2e-5
    vision_learning_rate: float | None = None
    projector_learning_rate: float | None = None
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    lr_scheduler: SchedulerName = "cosine"
    warmup_ratio: float = 0.001
    min_lr_ratio: float = 0.0
    lr_schedule_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("learning_rate", "vision_learning_rate", "projector_learning_rate"):
            rate = getattr(self, name)
            if rate is not None and not rate > 0:
                raise SettingError(f"model.{name} must be above 0, got {rate}")

    def part_rates(self) -> dict[str, float]:
        """Parameter-name fragment -> learning rate, for the parts with a rate of their own."""
        rates = {"vision": self.vision_learning_rate, "projector": self.projector_learning_rate}
        return {PART_PREFIXES[part]: rate for part, rate in rates.items() if rate is not None}

    def configure(self, model: nn.Module, stepping_batches: Callable[[], int], fused: bool = True) -> dict[str, Any]:
        """Lightning's `configure_optimizers` answer: the optimizer and its per-step schedule over
        `lr_schedule_steps` (else the trainer's `stepping_batches()`)."""
        groups = parameter_groups(model, self.weight_decay, self.part_rates())
        optimizer = build_optimizer(self.name, groups, self.learning_rate, tuple(self.betas), self.eps, fused=fused)
        total = self.lr_schedule_steps or max(1, stepping_batches())
        warmup = warmup_steps_for(total, self.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total, warmup, self.lr_scheduler, self.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def parameter_groups(model: nn.Module, weight_decay: float, learning_rates: dict[str, float] | None = None) -> list[dict]:
    """Trainable parameters grouped by learning rate and decay: norms, biases and embeddings get no
    weight decay; `learning_rates` maps a parameter-name fragment (e.g. `vision_tower`) to its own rate."""
    learning_rates = learning_rates or {}
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding) or "norm" in type(module).__name__.lower():
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    groups: dict[tuple[str | None, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        part = next((fragment for fragment in learning_rates if fragment in name), None)
        decays = not (id(parameter) in no_decay_ids or parameter.ndim < 2 or name.endswith("bias"))
        groups.setdefault((part, decays), []).append(parameter)
    result = []
    for (part, decays), parameters in groups.items():
        group = {"params": parameters, "weight_decay": weight_decay if decays else 0.0, "part": part or "model"}
        if part is not None:
            group["lr"] = learning_rates[part]
        result.append(group)
    return result


def build_optimizer(
    name: OptimizerName, groups: Iterable[dict], lr: float, betas: tuple[float, float], eps: float, fused: bool = True
) -> torch.optim.Optimizer:
    """AdamW from torch (its fused kernel on CPU and CUDA unless `fused` is false), or
    bitsandbytes' 8-bit (paged) AdamW."""
    groups = list(groups)
    if name == "adamw":
        devices = {parameter.device.type for group in groups for parameter in group["params"]}
        # One fused kernel per step instead of a loop over parameters: the update of GOT's
        # 151,860-row embedding was half of a tiny model's step with the for-each kernel.
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused and devices <= {"cpu", "cuda"})
    bnb = require("bitsandbytes", f"optimizer {name!r}")
    optimizer_class = {"adamw8bit": bnb.optim.AdamW8bit, "paged_adamw8bit": bnb.optim.PagedAdamW8bit}[name]
    return optimizer_class(groups, lr=lr, betas=betas, eps=eps)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: SchedulerName, min_ratio: float) -> float:
    """Learning-rate multiplier at an optimizer step: linear warmup, then the schedule down to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    decay = 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return min_ratio + (1.0 - min_ratio) * decay


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """HF Trainer's rule: ceil(total * ratio)."""
    return math.ceil(total_steps * warmup_ratio)
