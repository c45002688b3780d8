"""Batched greedy OCR generation from training-format batches (left-padded prompts, KV cache)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from transformers import GotOcr2ForConditionalGeneration, LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutputWithPooling

from got_lightning.tokens import IGNORE_INDEX, IM_END_ID, PAD_ID


@dataclass
class GenerationArgs:
    """Greedy decoding settings.

    Args:
        max_new_tokens: Longest answer generated (upstream: 4096).
        no_repeat_ngram_size: Block repeated n-grams of this size (upstream: 20; 0 turns it off).
    """

    max_new_tokens: int = 4096
    no_repeat_ngram_size: int = 20


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
    longest = max(len(prompt) for prompt in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[row, longest - len(prompt):] = 1
    return ids, mask


class NgramBlocker(LogitsProcessor):
    """transformers' `no_repeat_ngram_size` rule (a token that would complete an n-gram already in
    the row, prompt included, is banned), with each row's n-grams indexed once by their first n-1
    tokens and extended by one per step, instead of every window compared at every step.

    Keeps per-row state between steps, so use one instance per `generate` call.
    """

    def __init__(self, ngram_size: int) -> None:
        self.ngram_size = ngram_size
        self._rows: list[list[int]] = []
        self._next_tokens: list[defaultdict[tuple[int, ...], set[int]]] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] < self.ngram_size:
            return scores
        if not self._rows:
            self._rows = [[] for _ in range(input_ids.shape[0])]
            self._next_tokens = [defaultdict(set) for _ in range(input_ids.shape[0])]
        context = self.ngram_size - 1
        new_tokens = input_ids[:, len(self._rows[0]) :].tolist()
        for row, index, tokens in zip(self._rows, self._next_tokens, new_tokens):
            for token in tokens:
                if len(row) >= context:
                    index[tuple(row[len(row) - context :])].add(token)
                row.append(token)
        for position, (row, index) in enumerate(zip(self._rows, self._next_tokens)):
            banned = index.get(tuple(row[len(row) - context :]))
            if banned:
                scores[position, list(banned)] = -float("inf")
        return scores


@torch.no_grad()
def generate_ids(
    model: GotOcr2ForConditionalGeneration,
    prompts: list[list[int]],
    image_features: torch.Tensor,
    args: GenerationArgs,
) -> list[list[int]]:
    """Greedy answers for a batch of prompts; `image_features` are their tiles' projected features
    `(tiles, tokens_per_tile, hidden)`, stacked in order (computed once, shared with the loss)."""
    device = image_features.device
    ids, mask = left_pad(prompts)
    output = model.generate(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=image_features)},
        do_sample=False,
        max_new_tokens=args.max_new_tokens,
        logits_processor=LogitsProcessorList([NgramBlocker(args.no_repeat_ngram_size)] if args.no_repeat_ngram_size else []),
        eos_token_id=IM_END_ID,
        pad_token_id=PAD_ID,
    )
    answers = []
    for row in output[:, ids.shape[1]:].tolist():
        answers.append(row[: row.index(IM_END_ID)] if IM_END_ID in row else [t for t in row if t != PAD_ID])
    return answers


def decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)
