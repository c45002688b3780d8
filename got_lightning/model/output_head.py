"""The output projection used while generating. On an x86 CPU in float32, its weight is reordered
once per evaluation epoch into oneDNN's blocked layout: a GEMM of a few rows against a
151,860-word vocabulary otherwise re-packs the whole weight at every step, which makes it about
twice as slow from 3 rows up. The copy costs one more output projection's worth of memory."""

from __future__ import annotations

import platform
from collections.abc import Callable

import torch
from torch import nn

OutputHead = Callable[[torch.Tensor], torch.Tensor]


class PackedOutputHead:
    """`lm_head` with its weight reordered for oneDNN, tuned for `rows` rows (any number works)."""

    def __init__(self, lm_head: nn.Linear, rows: int) -> None:
        self._bias = None if lm_head.bias is None else lm_head.bias.detach()
        self._packed = torch.ops.mkldnn._reorder_linear_weight(lm_head.weight.detach(), rows)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(hidden, self._packed, self._bias, "none", [], "")


def can_pack(lm_head: nn.Module) -> bool:
    """Whether `lm_head` is a plain float32 linear layer on an x86 CPU with oneDNN, outside CPU
    autocast (which would run it in bfloat16)."""
    return (
        torch.backends.mkldnn.is_available()
        and platform.machine().lower() in {"x86_64", "amd64"}
        and not torch.is_autocast_enabled("cpu")
        and type(lm_head) is nn.Linear
        and lm_head.weight.device.type == "cpu"
        and lm_head.weight.dtype == torch.float32
    )


def generation_head(lm_head: nn.Module, rows: int) -> OutputHead:
    """The fastest output projection for generating about `rows` rows at a time (the same logits
    up to float rounding); the weights must not change while it is in use."""
    return PackedOutputHead(lm_head, rows) if can_pack(lm_head) else lm_head
