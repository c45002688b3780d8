import pytest
import torch
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

from got_lightning.data.collate import Collator
from got_lightning.generation import GenerationArgs, NgramBlocker, generate_ids, split_prompts
from got_lightning.module import GotLightningModule
from got_lightning.tokens import IM_END_ID, PAD_ID
from tests.training_helpers import datamodule


@pytest.mark.parametrize("ngram_size", [2, 3, 5])
def test_ngram_blocker_bans_what_transformers_bans_at_every_step(ngram_size):
    generator = torch.Generator().manual_seed(ngram_size)
    tokens = torch.randint(0, 4, (3, 60), generator=generator)  # four ids: n-grams repeat a lot
    blocker, reference = NgramBlocker(ngram_size), NoRepeatNGramLogitsProcessor(ngram_size)
    banned_somewhere = False
    for length in range(1, tokens.shape[1] + 1):
        scores = torch.randn(3, 6, generator=generator)
        expected = reference(tokens[:, :length], scores.clone())
        assert torch.equal(blocker(tokens[:, :length], scores.clone()), expected)
        banned_somewhere |= bool(torch.isinf(expected).any())
    assert banned_somewhere


def test_batched_generation_with_ngram_blocking_equals_transformers_one_page_at_a_time(image_sensitive_model_dir, digit_pages):
    data = datamodule(digit_pages, image_sensitive_model_dir, val_fraction=0.5)
    data.setup("validate")
    module = GotLightningModule(str(image_sensitive_model_dir))
    model, collate = module.got.eval(), Collator()
    samples = [data.val_dataset[position] for position in range(6)]
    args = GenerationArgs(max_new_tokens=24, no_repeat_ngram_size=2)
    batch = collate(samples)
    prompts, _ = split_prompts(batch["input_ids"], batch["labels"])
    with torch.no_grad():
        features = module.image_features(batch["pixel_values"])
        ours = generate_ids(model, prompts, features, args)
        unblocked = generate_ids(model, prompts, features, GenerationArgs(max_new_tokens=24, no_repeat_ngram_size=0))
        theirs = []
        for sample in samples:
            single = collate([sample])
            prompt = split_prompts(single["input_ids"], single["labels"])[0]
            output = model.generate(
                input_ids=torch.tensor(prompt), pixel_values=single["pixel_values"], do_sample=False,
                max_new_tokens=24, no_repeat_ngram_size=2, eos_token_id=IM_END_ID, pad_token_id=PAD_ID,
            )[0, len(prompt[0]):].tolist()
            theirs.append(output[: output.index(IM_END_ID)] if IM_END_ID in output else output)
    assert ours == theirs
    assert ours != unblocked  # the blocking was exercised
