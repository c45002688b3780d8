"""Model directories: tiny presets, transformers loading, original-format conversion."""

import importlib.util
import json
import os
import re

import pytest
import torch
from transformers import AutoProcessor, AutoTokenizer, GotOcr2ForConditionalGeneration

from got_lightning.cli import main
from got_lightning.model.loading import load_model, read_weights
from got_lightning.model.model_dir import ConversionError, ModelDirError
from got_lightning.model.original import KEY_RULES, convert_key
from got_lightning.model.presets import preset_config, random_model
from got_lightning.tokenizer import build_got_tokenizer, special_token_problems, tokenization_problems
from got_lightning.tokens import VOCAB_SIZE
from tests.helpers import run_executable, to_original_key, write_original_dir


def test_presets_are_deterministic_and_match_the_real_vocabulary():
    first, second, other = random_model("micro", 0), random_model("micro", 0), random_model("micro", 1)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(first.lm_head.weight, other.lm_head.weight)
    assert first.config.text_config.vocab_size == VOCAB_SIZE
    real = preset_config("got")
    assert (real.text_config.hidden_size, real.text_config.num_hidden_layers) == (1024, 24)
    assert real.vision_config.image_size == 1024


def test_init_writes_a_stock_transformers_directory(tmp_path):
    assert main(["init", "--preset", "micro", "--output", str(tmp_path / "m"), "--seed", "5"]) == 0
    loaded = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "m")
    for (name, a), b in zip(random_model("micro", 5).state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    processor = AutoProcessor.from_pretrained(tmp_path / "m")
    assert processor.image_processor.size["height"] == 64
    assert len(processor.tokenizer) == VOCAB_SIZE


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="shows only where DeepSpeed is installed")
def test_writing_a_model_directory_does_not_import_deepspeed(tmp_path):
    # transformers' save_pretrained asks accelerate to unwrap the model, which imports DeepSpeed
    # to know its wrapper: 1.2 s of every init, convert and export (and of the demo's first fit).
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    result = run_executable("init", "--preset", "micro", "--output", str(tmp_path / "model"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "transformers" in imported and "safetensors" in imported
    assert not [name for name in imported if name.split(".")[0] == "deepspeed"]
    assert load_model(tmp_path / "model").config.text_config.vocab_size == VOCAB_SIZE


def test_loading_draws_no_bar_over_the_weights(micro_model_dir, capfd):
    model = load_model(micro_model_dir)
    assert model.config.text_config.vocab_size == VOCAB_SIZE
    assert "Loading weights" not in capfd.readouterr().err


def test_the_written_tokenizer_config_lists_the_added_tokens_and_loads_the_same_tokenizer(tmp_path):
    assert main(["init", "--preset", "micro", "--output", str(tmp_path / "m")]) == 0
    written = json.loads((tmp_path / "m" / "tokenizer_config.json").read_text(encoding="utf-8"))["added_tokens_decoder"]
    built = build_got_tokenizer()
    assert {int(index): token["content"] for index, token in written.items()} == {
        index: token.content for index, token in built.added_tokens_decoder.items()
    }
    assert all(token["special"] and not token["normalized"] for token in written.values())
    loaded = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert loaded.backend_tokenizer.to_str() == built.backend_tokenizer.to_str()
    assert (loaded.pad_token, loaded.eos_token, len(loaded)) == (built.pad_token, built.eos_token, VOCAB_SIZE)
    assert not special_token_problems(loaded) and not tokenization_problems(loaded)


def test_original_checkpoint_converts_to_identical_weights(tmp_path):
    model = random_model("micro", 2)
    source = write_original_dir(tmp_path / "original", model)
    assert all(
        k.startswith(("model.vision_tower_high", "model.mm_projector_vary", "model.embed", "model.layers", "model.norm"))
        for k in read_weights(source)
    )
    assert main(["convert", "--input", str(source), "--output", str(tmp_path / "hf")]) == 0
    for converted in (GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "hf"), load_model(source)):
        assert converted.config.vision_config.image_size == 64
        assert list(converted.config.vision_config.global_attn_indexes) == [1]
        for name, tensor in model.state_dict().items():
            assert torch.equal(converted.state_dict()[name], tensor), name


def test_conversion_lists_missing_and_unexpected_keys(tmp_path):
    model = random_model("micro", 2)
    source = write_original_dir(
        tmp_path / "broken", model, drop=["model.mm_projector_vary.bias"], extra={"model.surprise.weight": torch.zeros(2)}
    )
    with pytest.raises(ConversionError) as error:
        load_model(source)
    assert error.value.missing == ["model.multi_modal_projector.multimodal_projector.bias"]
    assert error.value.unexpected == ["model.surprise.weight"]
    assert main(["convert", "--input", str(source), "--output", str(tmp_path / "out")]) == 2


def test_every_documented_rule_is_used():
    model = random_model("micro", 0)
    used = set()
    for key in model.state_dict():
        original = to_original_key(key)
        for pattern, _ in KEY_RULES:
            if re.match(pattern, original):
                used.add(pattern)
                break
        assert convert_key(original) == key
    assert used == {pattern for pattern, _ in KEY_RULES}


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelDirError, match="does not exist"):
        load_model(tmp_path / "nowhere")
