"""Held-out scores summed over a split, exact under DDP (a torchmetrics Metric)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from got_lightning.evaluation.scores import SampleScore


class OcrMetrics(Metric):
    """Scores over a whole split from summed states, so DDP ranks combine exactly.

    `cer` is torchmetrics' `CharErrorRate` (total edits / total reference characters), computed with
    rapidfuzz's C++ Levenshtein: the same numbers, fast enough for pages of thousands of characters.
    `edit_distance` (upstream's normalized edit distance), `f1` and `exact_match` are means over samples.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("edits", "reference_chars", "edit_distance_sum", "f1_sum", "exact_matches", "samples"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: list[SampleScore]) -> None:
        for score in scores:
            self.edits += score.edits
            self.reference_chars += score.reference_chars
            self.edit_distance_sum += score.normalized_edit_distance
            self.f1_sum += score.f1
            self.exact_matches += float(score.exact)
            self.samples += 1

    def compute(self) -> dict[str, torch.Tensor]:
        samples = self.samples.clamp(min=1)
        return {
            "cer": self.edits / self.reference_chars.clamp(min=1),
            "edit_distance": self.edit_distance_sum / samples,
            "f1": self.f1_sum / samples,
            "exact_match": self.exact_matches / samples,
            "num_samples": self.samples,
            "edits": self.edits,
            "reference_chars": self.reference_chars,
        }
