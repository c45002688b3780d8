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
