"""Right-padded batches; bad samples are dropped from the batch and reported, never replaced."""

from __future__ import annotations

from typing import Any

import torch

from got_lightning.tokens import IGNORE_INDEX, PAD_ID


class Collator:
    """Pads `input_ids` with `<|endoftext|>` and `labels` with -100 to the longest sample, and
    stacks every tile of every sample, in order, into one `pixel_values`."""

    def __init__(self, pad_id: int = PAD_ID) -> None:
        self.pad_id = pad_id

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        good = [s for s in samples if "problem" not in s]
        problems = [s["problem"].to_dict() for s in samples if "problem" in s]
        batch: dict[str, Any] = {"problems": problems, "size": len(good)}
        if not good:
            return batch
        longest = max(len(s["input_ids"]) for s in good)
        input_ids = torch.full((len(good), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(good), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(good), longest), dtype=torch.long)
        for row, sample in enumerate(good):
            length = len(sample["input_ids"])
            input_ids[row, :length] = sample["input_ids"]
            labels[row, :length] = sample["labels"]
            attention_mask[row, :length] = 1
        batch.update(
            input_ids=input_ids,
            labels=labels,
            attention_mask=attention_mask,
            pixel_values=torch.cat([s["pixel_values"] for s in good]),
            num_tiles=torch.tensor([s["num_tiles"] for s in good]),
            keys=[s["key"] for s in good],
            images=[s["images"] for s in good],
            image_paths=[s["image_paths"] for s in good],
            answers=[s["answer"] for s in good],
        )
        return batch
