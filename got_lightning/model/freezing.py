"""The three trainable parts of GOT, freezing flags, and the trainable/frozen summary."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from torch import nn
from transformers import GotOcr2ForConditionalGeneration

from got_lightning.core.errors import SettingError

PARTS = ("vision_tower", "projector", "language_model")


def part_modules(model: GotOcr2ForConditionalGeneration) -> dict[str, nn.Module]:
    """The vision tower, the projector, and the language model with its (tied) head."""
    return {
        "vision_tower": model.model.vision_tower,
        "projector": model.model.multi_modal_projector,
        "language_model": nn.ModuleList([model.model.language_model, model.lm_head]),
    }


@dataclass(frozen=True)
class Freezing:
    """Which parts of the model keep their weights."""

    vision_tower: bool = True
    projector: bool = False
    language_model: bool = False

    def frozen(self, part: str) -> bool:
        return getattr(self, part)

    def apply(self, model: GotOcr2ForConditionalGeneration) -> None:
        """Set `requires_grad` per part; LoRA adapters are re-enabled by the LoRA code afterwards."""
        for part, module in part_modules(model).items():
            module.requires_grad_(not self.frozen(part))

    def check(self, model: nn.Module) -> None:
        if not any(p.requires_grad for p in model.parameters()):
            raise SettingError("every part of the model is frozen: nothing to train")


@dataclass(frozen=True)
class PartCount:
    part: str
    trainable: int
    frozen: int


def count_parameters(model: GotOcr2ForConditionalGeneration) -> list[PartCount]:
    """Trainable and frozen parameter counts per part (tied weights counted once)."""
    counts, seen = [], set()
    for part, module in part_modules(model).items():
        trainable = frozen = 0
        for parameter in module.parameters():
            if id(parameter) in seen:
                continue
            seen.add(id(parameter))
            if parameter.requires_grad:
                trainable += parameter.numel()
            else:
                frozen += parameter.numel()
        counts.append(PartCount(part, trainable, frozen))
    return counts


def print_summary(counts: list[PartCount], console: Console | None = None, frozen_tower_in_eval_mode: bool = False) -> None:
    """A rich table of trainable vs frozen parameters per part."""
    caption = "the frozen vision tower runs in eval mode, as upstream's does" if frozen_tower_in_eval_mode else None
    table = Table(title="GOT parameters", caption=caption)
    for column in ("part", "trainable", "frozen"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for count in counts:
        table.add_row(count.part, f"{count.trainable:,}", f"{count.frozen:,}")
    table.add_row("total", f"{sum(c.trainable for c in counts):,}", f"{sum(c.frozen for c in counts):,}", style="bold")
    (console or Console()).print(table)
