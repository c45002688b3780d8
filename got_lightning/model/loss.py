"""Token-level cross entropy on supervised positions only (the full-vocabulary logits of image and
prompt tokens are never materialised)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from got_lightning.tokens import IGNORE_INDEX


def supervised_loss_sum(hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross entropy over supervised positions, and their number."""
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    count = int(mask.sum())
    if count == 0:
        return hidden.sum() * 0.0, 0
    logits = lm_head(hidden[:, :-1][mask]).float()
    return F.cross_entropy(logits, targets[mask], reduction="sum"), count


def effective_batch_loss(
    loss_sum: torch.Tensor, window_tokens: torch.Tensor, ranks: int, accumulation: int, engine_divides: bool
) -> torch.Tensor:
    """The micro-batch loss whose gradients, once averaged, are those of the mean cross entropy over
    every supervised token of the effective batch (all ranks, every micro-batch of the window).

    `window_tokens` is that count summed over ranks. What happens after `training_step` is undone:
    Lightning divides by the accumulation count, DDP/ZeRO average over ranks, and DeepSpeed's
    `engine.backward` (`engine_divides`) divides by the accumulation count again.
    """
    scale = ranks * accumulation * (accumulation if engine_divides else 1)
    return loss_sum * (scale / window_tokens.clamp(min=1.0))
