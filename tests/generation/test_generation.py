import pytest
import torch
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

from got_lightning.data.collate import Collator
from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.generation.greedy import GenerationArgs, generate_ids, generate_one_page
from got_lightning.generation.ngrams import NgramBlocker
from got_lightning.generation.prompts import split_prompts
from got_lightning.model.output_head import PackedOutputHead, generation_head
from got_lightning.module import GotLightningModule
from tests.generation.helpers import ARGS, make_answers_end_at_many_lengths
from tests.helpers import record, text_page, write_json


@pytest.mark.parametrize("ngram_size", [2, 3, 5])
def test_ngram_blocker_bans_what_transformers_bans_at_every_step(ngram_size):
    generator = torch.Generator().manual_seed(ngram_size)
    tokens = torch.randint(0, 4, (3, 60), generator=generator)  # four ids: n-grams repeat a lot
    prompt_length = 7
    blocker, reference = NgramBlocker(ngram_size, tokens[:, :prompt_length].tolist()), NoRepeatNGramLogitsProcessor(ngram_size)
    banned_somewhere = False
    for length in range(prompt_length, tokens.shape[1] + 1):
        if length > prompt_length:
            blocker.add(tokens[:, length - 1].tolist())
        scores = torch.randn(3, 6, generator=generator)
        expected = reference(tokens[:, :length], scores.clone())
        blocker.ban(scores)
        assert torch.equal(scores, expected)
        banned_somewhere |= bool(torch.isinf(expected).any())
    assert banned_somewhere


def test_ngram_blocker_keeps_the_state_of_the_rows_it_keeps():
    prompts = [[1, 2, 3, 1, 2], [5, 6, 5], [1, 2, 9, 1, 2]]
    blocker = NgramBlocker(3, prompts)
    blocker.keep([2, 0])
    scores = torch.zeros(2, 10)
    blocker.ban(scores)
    assert torch.isinf(scores[0, 9]) and torch.isinf(scores[1, 3])
    assert torch.isinf(scores).sum() == 2


def one_page_at_a_time(model, samples, args):
    return [generate_one_page(model, Collator()([sample]), args) for sample in samples]


def test_batched_generation_with_ngram_blocking_equals_transformers_one_page_at_a_time(held_out):
    model, samples, prompts, features = held_out
    args = GenerationArgs(max_new_tokens=24, no_repeat_ngram_size=2)
    ours = generate_ids(model, prompts, features, args)
    assert ours == one_page_at_a_time(model, samples, args)
    assert ours != generate_ids(model, prompts, features, GenerationArgs(max_new_tokens=24, no_repeat_ngram_size=0))


@pytest.mark.parametrize("packed", [False, True], ids=["lm_head", "packed_head"])
def test_rows_that_finish_early_leave_the_batch_and_answers_stay_the_same(held_out, packed):
    model, samples, prompts, features = held_out
    make_answers_end_at_many_lengths(model, prompts, features, ARGS)
    head = generation_head(model.lm_head, len(prompts)) if packed else None
    if packed and not isinstance(head, PackedOutputHead):
        pytest.skip("packing needs oneDNN on x86")
    ours = generate_ids(model, prompts, features, ARGS, output_head=head)
    lengths = sorted(len(answer) for answer in ours)
    assert len(set(lengths) - {0, 24}) >= 2, lengths
    assert ours == one_page_at_a_time(model, samples, ARGS)


def test_a_process_whose_rows_are_done_keeps_stepping_until_all_processes_are(held_out):
    model, _, prompts, features = held_out
    make_answers_end_at_many_lengths(model, prompts, features, ARGS)
    short = [row for row, answer in enumerate(generate_ids(model, prompts, features, ARGS)) if len(answer) < 24 - 5]
    prompts, features = [prompts[row] for row in short], features[short]  # one tile per page
    forwards = []
    hook = model.model.register_forward_hook(lambda *_: forwards.append(1))
    alone = generate_ids(model, prompts, features, ARGS)
    steps_alone, forwards[:] = len(forwards), []
    # Another process (standing in for the collective vote) finishes 5 steps after this one.
    votes = []
    synced = generate_ids(model, prompts, features, ARGS, lambda done: votes.append(done) or sum(votes) > 5)
    hook.remove()
    assert len(short) >= 2
    assert synced == alone
    assert len(forwards) == steps_alone + 5


def test_left_padded_prompts_of_different_lengths_give_the_one_page_answers(image_sensitive_model_dir, tmp_path):
    """Tiles, a custom prompt and multi-turn records in one batch: every row but the longest is
    left-padded, and each answer equals transformers' `generate` on that page alone."""
    sizes = [(64, 64), (256, 64), (64, 192), (128, 128), (300, 90), (64, 64), (200, 200), (90, 250)]
    records = []
    for number, size in enumerate(sizes):
        image = text_page(tmp_path / f"p{number}.png", size=size, text=str(number) * 3).name
        prompt = ["<image>\nOCR: ", "<image>\nOCR with format: ", "<image>\n[red] OCR: "][number % 3]
        if number % 4 == 3:  # multi-turn: the prompt carries an earlier question and answer
            records.append(
                {
                    "image": image,
                    "conversations": [
                        {"from": "human", "value": prompt},
                        {"from": "gpt", "value": "earlier answer"},
                        {"from": "human", "value": "and again, slowly: "},
                        {"from": "gpt", "value": "x"},
                    ],
                }
            )
        else:
            records.append(record(image, "x", prompt))
    data = GotDataModule(
        datasets=[DatasetSpec("mixed", str(write_json(tmp_path / "data.json", records)))],
        val_fraction=0.0,
        image_mode="tiles",
        max_tiles=4,
        model_path=str(image_sensitive_model_dir),
    )
    data.setup("fit")
    samples = [data.train_dataset[item] for item in range(len(records))]
    batch = Collator()(samples)
    prompts, _ = split_prompts(batch["input_ids"], batch["labels"])
    assert len({len(prompt) for prompt in prompts}) >= 5 and len(set(batch["num_tiles"].tolist())) >= 3
    module = GotLightningModule(str(image_sensitive_model_dir))
    with torch.no_grad():
        features = module.image_features(batch["pixel_values"])
    model = module.got.eval()
    args = GenerationArgs(max_new_tokens=16, no_repeat_ngram_size=3)
    ours = generate_ids(model, prompts, features, args)
    assert ours == one_page_at_a_time(model, samples, args)
    assert len({tuple(answer) for answer in ours}) > 1
