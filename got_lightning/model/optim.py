"""Optimizers with decay/no-decay parameter groups and the warmup + cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from got_lightning.optional import require

OptimizerName = Literal["adamw", "adamw8bit", "paged_adamw8bit"]
SchedulerName = Literal["cosine", "linear", "constant"]


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
