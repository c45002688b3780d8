"""Batched greedy OCR generation from training-format batches (left-padded prompts, KV cache,
finished rows leaving the batch)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GotOcr2ForConditionalGeneration, PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutputWithPooling

from got_lightning.model.output_head import OutputHead
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
        ids[row, longest - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, longest - len(prompt) :] = 1
    return ids, mask


class NgramBlocker:
    """transformers' `no_repeat_ngram_size` rule: a token that would complete an n-gram already in
    the row (prompt included) is banned. Each row's n-grams are indexed once by their first n-1
    tokens and extended by one per step, instead of every window compared at every step."""

    def __init__(self, ngram_size: int, prompts: list[list[int]]) -> None:
        self.context = ngram_size - 1
        self._rows: list[list[int]] = []
        self._next_tokens: list[defaultdict[tuple[int, ...], set[int]]] = []
        for prompt in prompts:
            self._rows.append([])
            self._next_tokens.append(defaultdict(set))
            for token in prompt:
                self._append(len(self._rows) - 1, token)

    def add(self, tokens: list[int]) -> None:
        """One new token per row."""
        for row, token in enumerate(tokens):
            self._append(row, token)

    def keep(self, rows: list[int]) -> None:
        """Forget every row but these, which become rows 0, 1, ..."""
        self._rows = [self._rows[row] for row in rows]
        self._next_tokens = [self._next_tokens[row] for row in rows]

    def ban(self, scores: torch.Tensor) -> None:
        """Set the scores `(rows, vocab)` of banned next tokens to -inf, in place."""
        for position, (row, index) in enumerate(zip(self._rows, self._next_tokens)):
            if len(row) < self.context:
                continue
            banned = index.get(tuple(row[len(row) - self.context :]))
            if banned:
                scores[position, list(banned)] = -float("inf")

    def _append(self, row: int, token: int) -> None:
        tokens = self._rows[row]
        if len(tokens) >= self.context:
            self._next_tokens[row][tuple(tokens[len(tokens) - self.context :])].add(token)
        tokens.append(token)


@torch.no_grad()
def generate_ids(
    model: GotOcr2ForConditionalGeneration,
    prompts: list[list[int]],
    image_features: torch.Tensor,
    args: GenerationArgs,
    all_finished: Callable[[bool], bool] = bool,
    output_head: OutputHead | None = None,
) -> list[list[int]]:
    """Greedy answers for a batch of prompts; `image_features` are their tiles' projected features
    `(tiles, tokens_per_tile, hidden)`, stacked in order (computed once, shared with the loss).

    The same tokens as transformers' `generate` one prompt at a time, but a row that has finished
    leaves the batch (its KV cache too): on pages whose answers run from ten to thousands of
    tokens, `generate` would keep the whole batch stepping until the longest answer ends.

    `all_finished` turns this process's "my rows are done" into everyone's: with weights sharded
    across processes (ZeRO-3, FSDP) every forward is collective, so a process whose rows are done
    keeps stepping (its outputs ignored) until all are.

    `output_head` projects last hidden states to logits (default: the model's `lm_head`; see
    `generation_head` for a faster one on CPU).
    """
    head = output_head or model.lm_head
    blocker = NgramBlocker(args.no_repeat_ngram_size, prompts) if args.no_repeat_ngram_size else None
    output, rows = _prefill(model, prompts, image_features, blocker)
    done_here = False
    for step in range(args.max_new_tokens):
        scores = head(output.last_hidden_state[:, -1]).float()
        if blocker:
            blocker.ban(scores)
        tokens = scores.max(dim=-1).indices
        if not done_here:
            running = rows.append(tokens.tolist())
            done_here = not running or step == args.max_new_tokens - 1
        if all_finished(done_here):
            break
        if not done_here:
            tokens = rows.keep(running, tokens)
        output = rows.step(model, tokens)
    return rows.answers


def _prefill(
    model: GotOcr2ForConditionalGeneration,
    prompts: list[list[int]],
    image_features: torch.Tensor,
    blocker: NgramBlocker | None,
) -> tuple[Any, _LiveRows]:
    """Run the left-padded prompts once, filling the KV cache."""
    ids, mask = (tensor.to(image_features.device) for tensor in left_pad(prompts))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    output = model.model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=image_features)},
        use_cache=True,
    )
    return output, _LiveRows(len(prompts), mask, positions[:, -1:] + 1, output.past_key_values, blocker)


class _LiveRows:
    """The rows still generating: each one's answer so far, and the batch state that shrinks with
    them (attention mask, next positions, KV cache, n-gram index)."""

    def __init__(
        self, count: int, mask: torch.Tensor, next_positions: torch.Tensor, cache: Any, blocker: NgramBlocker | None
    ) -> None:
        self.rows = list(range(count))
        self.answers: list[list[int]] = [[] for _ in range(count)]
        self.mask, self.next_positions, self.cache, self.blocker = mask, next_positions, cache, blocker

    def append(self, tokens: list[int]) -> list[int]:
        """Add each live row's new token to its answer; returns the batch positions still running."""
        running = []
        for position, (row, token) in enumerate(zip(self.rows, tokens)):
            if token != IM_END_ID:
                self.answers[row].append(token)
                running.append(position)
        return running

    def keep(self, running: list[int], tokens: torch.Tensor) -> torch.Tensor:
        """Drop the finished rows from the batch (KV cache included); returns the kept rows' tokens."""
        if len(running) < len(self.rows):
            keep = torch.tensor(running, device=tokens.device)
            self.cache.batch_select_indices(keep)
            self.mask, self.next_positions, tokens = self.mask[keep], self.next_positions[keep], tokens[keep]
            self.rows = [self.rows[position] for position in running]
            if self.blocker:
                self.blocker.keep(running)
        if self.blocker:
            self.blocker.add(tokens.tolist())
        return tokens

    def step(self, model: GotOcr2ForConditionalGeneration, tokens: torch.Tensor) -> Any:
        """One decoding step: feed each row's last token."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        output = model.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.next_positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.next_positions = self.next_positions + 1
        return output


@torch.no_grad()
def generate_one_page(model: GotOcr2ForConditionalGeneration, batch: dict, args: GenerationArgs) -> list[int]:
    """transformers' `generate` on a collated batch of one page, encoder included, as upstream's
    eval scripts run it: the reference `generate_ids` is measured and tested against."""
    prompt = split_prompts(batch["input_ids"], batch["labels"])[0]
    output = model.generate(
        input_ids=torch.tensor(prompt),
        pixel_values=batch["pixel_values"],
        do_sample=False,
        max_new_tokens=args.max_new_tokens,
        no_repeat_ngram_size=args.no_repeat_ngram_size or None,
        eos_token_id=IM_END_ID,
        pad_token_id=PAD_ID,
    )
    answer = output[0, len(prompt[0]) :].tolist()
    return answer[: answer.index(IM_END_ID)] if IM_END_ID in answer else answer


def decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)
