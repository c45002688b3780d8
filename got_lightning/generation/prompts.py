"""Prompts out of training-format batches, and left padding for a batch of prompts."""

from __future__ import annotations

import torch

from got_lightning.tokens import IGNORE_INDEX, IM_END_ID, PAD_ID


def last_answer_span(labels: torch.Tensor) -> tuple[int, int]:
    """[start, end) of the last supervised run of one row of labels (its `<|im_end|>` included)."""
    positions = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    if not positions:
        return len(labels), len(labels)
    end = positions[-1] + 1
    start = end - 1
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    return start, end


def split_prompts(input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[list[list[int]], list[list[int]]]:
    """Per row: the prompt (everything before the last answer) and the reference answer ids."""
    prompts, references = [], []
    for ids, row_labels in zip(input_ids, labels):
        start, end = last_answer_span(row_labels)
        prompts.append(ids[:start].tolist())
        references.append([token for token in ids[start:end].tolist() if token != IM_END_ID])
    return prompts, references


def left_pad(prompts: list[list[int]], pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """`(ids, attention_mask)` with every prompt right-aligned."""
    longest = max(len(prompt) for prompt in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, longest - len(prompt) :] = 1
    return ids, mask
