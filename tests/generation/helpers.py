"""Shared by the generation tests."""

import torch

from got_lightning.generation.greedy import GenerationArgs, generate_ids
from got_lightning.tokens import IM_END_ID


@torch.no_grad()
def make_answers_end_at_many_lengths(model, prompts, features, args):
    """The random model never ends an answer: make `<|im_end|>` win wherever some token would, one
    that first comes at many different steps. The output projection is untied from the input
    embeddings first, so the prompts read the same."""
    answers = generate_ids(model, prompts, features, args)
    first_seen = {token: {answer.index(token) for answer in answers if token in answer} for answer in answers for token in answer}
    token = max(first_seen, key=lambda candidate: len(first_seen[candidate] - {0}))
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.clone())
    model.lm_head.weight[IM_END_ID] = model.lm_head.weight[token] * 1.0001


ARGS = GenerationArgs(max_new_tokens=24, no_repeat_ngram_size=2)
