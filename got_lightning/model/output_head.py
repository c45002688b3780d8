"""The output projection used while generating. On CPU in float32 with MKL, its weight is packed
once for the evaluation batch size: MKL's GEMM for a few rows against a 151,860-word vocabulary
otherwise re-packs the whole weight at every step, which makes it about twice as slow."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

OutputHead = Callable[[torch.Tensor], torch.Tensor]


class PackedOutputHead:
    """`lm_head` with its weight packed for `rows` rows (a float32 copy of the weight); inputs with
    another number of rows fall back to the unpacked weight, with the same results."""

    def __init__(self, lm_head: nn.Linear, rows: int) -> None:
        self.rows = rows
        self._weight = lm_head.weight.detach()
        self._bias = None if lm_head.bias is None else lm_head.bias.detach()
        self._packed = torch.ops.mkl._mkl_reorder_linear_weight(self._weight, rows)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkl._mkl_linear(hidden, self._packed, self._weight, self._bias, self.rows)


def can_pack(lm_head: nn.Module) -> bool:
    """Whether `lm_head` is a plain float32 CPU linear layer, outside CPU autocast (which would run
    it in bfloat16), and this torch has MKL's packed GEMM."""
    return (
        torch.backends.mkl.is_available()
        and not torch.is_autocast_enabled("cpu")
        and type(lm_head) is nn.Linear
        and lm_head.weight.device.type == "cpu"
        and lm_head.weight.dtype == torch.float32
    )


def generation_head(lm_head: nn.Module, rows: int) -> OutputHead:
    """The fastest exact output projection for generating `rows` rows at a time; the weights must
    not change while it is in use (build one per evaluation epoch)."""
    return PackedOutputHead(lm_head, rows) if can_pack(lm_head) else lm_head
