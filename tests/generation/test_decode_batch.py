"""Continuous batching: rows that join a running batch, leave it early or are removed read exactly
what they read alone; each answer's confidence is the model's own probability of its tokens."""

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from got_lightning.generation.batch import DecodeBatch
from got_lightning.generation.greedy import GenerationArgs, generate_answers, generate_ids
from got_lightning.tokens import IM_END_ID
from tests.generation.helpers import ARGS, make_answers_end_at_many_lengths


def alone(model, prompts, features, args):
    return [generate_ids(model, [prompt], features[row : row + 1], args)[0] for row, prompt in enumerate(prompts)]


@torch.no_grad()
def staggered(model, prompts, features, args, arrivals, cancel=()):
    """Rows join in groups (`arrivals[step]`: the rows added before that step); `cancel[step]`:
    rows removed after that step's choice. Returns each row's answer ids."""
    batch = DecodeBatch(model, args.no_repeat_ngram_size)
    answers = {}
    step = 0
    pending = dict(arrivals)
    while pending or len(batch):
        if step in pending:
            rows = pending.pop(step)
            for row, answer in zip(
                rows, batch.add([prompts[r] for r in rows], features[rows], [args.max_new_tokens] * len(rows), rows)
            ):
                answers[row] = answer
        if len(batch):
            batch.choose()
            batch.remove(set(dict(cancel).get(step, ())))
            if len(batch):
                batch.advance()
        step += 1
    return {row: answer.ids for row, answer in answers.items()}


def test_rows_joining_a_running_batch_read_what_they_read_alone(held_out):
    model, _, prompts, features = held_out
    make_answers_end_at_many_lengths(model, prompts, features, ARGS)
    expected = alone(model, prompts, features, ARGS)
    assert len({len(answer) for answer in expected}) >= 3  # rows leave at different steps
    rows = list(range(len(prompts)))
    arrivals = {0: rows[:3], 2: rows[3:5], 5: rows[5:6], 9: rows[6:]}
    assert staggered(model, prompts, features, ARGS, arrivals) == dict(enumerate(expected))
    # A row that arrives after the whole batch has emptied starts a fresh one.
    assert staggered(model, prompts, features, ARGS, {0: rows[:1], 40: rows[1:2]}) == {0: expected[0], 1: expected[1]}


def test_a_removed_row_leaves_the_others_untouched(held_out):
    model, _, prompts, features = held_out
    expected = alone(model, prompts, features, ARGS)
    rows = list(range(len(prompts)))
    read = staggered(model, prompts, features, ARGS, {0: rows[:4], 3: rows[4:]}, cancel={1: (0, 2), 4: (5,)})
    for row in rows:
        if row in (0, 2, 5):
            assert read[row] == expected[row][: len(read[row])] and len(read[row]) < len(expected[row])
        else:
            assert read[row] == expected[row]


@torch.no_grad()
def test_confidence_is_the_probability_the_model_gave_each_chosen_token(held_out):
    model, _, prompts, features = held_out
    make_answers_end_at_many_lengths(model, prompts, features, ARGS)
    answers = generate_answers(model, prompts, features, GenerationArgs(max_new_tokens=24, no_repeat_ngram_size=0))
    assert any(answer.stopped for answer in answers) and any(answer.truncated for answer in answers)
    for row, answer in enumerate(answers):
        chosen = answer.ids + ([IM_END_ID] if answer.stopped else [])
        ids = torch.tensor([prompts[row] + chosen])
        output = model.model(
            input_ids=ids, mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=features[row : row + 1])}
        )
        logits = model.lm_head(output.last_hidden_state[0, len(prompts[row]) - 1 : -1]).float()
        probabilities = logits.softmax(-1)[torch.arange(len(chosen)), torch.tensor(chosen)]
        assert answer.truncated == (not answer.stopped and len(answer.ids) == 24)
        assert answer.confidence["mean"] == pytest.approx(float(probabilities.mean()), rel=1e-4)
        assert answer.confidence["min"] == pytest.approx(float(probabilities.min()), rel=1e-4)
