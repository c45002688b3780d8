"""Right-padded batches; bad samples are dropped from the batch and reported, never replaced."""

from __future__ import annotations

from typing import Any, TypedDict

import torch

from got_lightning.tokens import IGNORE_INDEX, PAD_ID


class Batch(TypedDict, total=False):
    """What a DataLoader hands the LightningModule: `problems` and `size` always; the tensors and
    per-sample lists when `size` > 0; the `window_*` keys on training batches (see
    `data.accumulation.WindowLoader`)."""

    problems: list[dict[str, Any]]  # the samples left out, as `Problem.to_dict()`
    size: int  # samples in the batch
    input_ids: torch.Tensor  # (size, longest) right-padded with <|endoftext|>
    labels: torch.Tensor  # (size, longest), -100 where not trained on
    attention_mask: torch.Tensor  # (size, longest)
    pixel_values: torch.Tensor  # (tiles, 3, image_size, image_size), every sample's tiles in order
    num_tiles: torch.Tensor  # (size,) tiles per sample
    keys: list[tuple[str, int]]  # each sample's (dataset name, record number)
    images: list[list[str]]  # each sample's image names as written in its record
    image_paths: list[list[str]]  # the files read
    answers: list[str]  # the reference text
    window_tokens: int  # supervised tokens of the accumulation window, on this rank
    window_size: int  # micro-batches in the window
    window_index: int  # the window's number in the epoch


class Collator:
    """Pads `input_ids` with `<|endoftext|>` and `labels` with -100 to the longest sample, and
    stacks every tile of every sample, in order, into one `pixel_values`."""

    def __init__(self, pad_id: int = PAD_ID) -> None:
        self.pad_id = pad_id

    def __call__(self, samples: list[dict[str, Any]]) -> Batch:
        good = [s for s in samples if "problem" not in s]
        problems = [s["problem"].to_dict() for s in samples if "problem" in s]
        batch: Batch = {"problems": problems, "size": len(good)}
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
