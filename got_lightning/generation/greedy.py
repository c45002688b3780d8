"""Greedy OCR generation of a batch of pages (validation and `predict`), and transformers' own
`generate` one page at a time, which it is measured and tested against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import GotOcr2ForConditionalGeneration, PreTrainedTokenizerBase

from got_lightning.generation.batch import Answer, DecodeBatch
from got_lightning.generation.prompts import split_prompts
from got_lightning.model.output_head import OutputHead
from got_lightning.tokens import IM_END_ID, PAD_ID


@dataclass
class GenerationArgs:
    """Greedy decoding settings.

    Args:
        max_new_tokens: Longest answer generated (upstream: 4096).
        no_repeat_ngram_size: Block repeated n-grams of this size (upstream: 20; 0 turns it off).
    """

    max_new_tokens: int = 4096
    no_repeat_ngram_size: int = 20


@torch.no_grad()
def generate_answers(
    model: GotOcr2ForConditionalGeneration,
    prompts: list[list[int]],
    image_features: torch.Tensor,
    args: GenerationArgs,
    all_finished: Callable[[bool], bool] = bool,
    output_head: OutputHead | None = None,
) -> list[Answer]:
    """Greedy answers for a batch of prompts; `image_features` are their tiles' projected features
    `(tiles, tokens_per_tile, hidden)`, stacked in order (computed once, shared with the loss).

    The same tokens as transformers' `generate` one prompt at a time, but a row that has finished
    leaves the batch (its KV cache too): on pages whose answers run from ten to thousands of
    tokens, `generate` would keep the whole batch stepping until the longest answer ends.

    `all_finished` turns this process's "my rows are done" into everyone's: with weights sharded
    across processes (ZeRO-3, FSDP) every forward is collective, so a process whose rows are done
    keeps stepping until all are.

    `output_head` projects last hidden states to logits (default: the model's `lm_head`; see
    `generation_head` for a faster one on CPU).
    """
    batch = DecodeBatch(model, args.no_repeat_ngram_size, output_head)
    answers = batch.add(prompts, image_features, [args.max_new_tokens] * len(prompts), list(range(len(prompts))))
    if args.max_new_tokens < 1:
        return answers
    while True:
        batch.choose()
        if all_finished(not batch):
            return answers
        batch.advance()


def generate_ids(
    model: GotOcr2ForConditionalGeneration,
    prompts: list[list[int]],
    image_features: torch.Tensor,
    args: GenerationArgs,
    all_finished: Callable[[bool], bool] = bool,
    output_head: OutputHead | None = None,
) -> list[list[int]]:
    """The answer token ids of `generate_answers`."""
    return [answer.ids for answer in generate_answers(model, prompts, image_features, args, all_finished, output_head)]


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
