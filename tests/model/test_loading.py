"""Model directories: tiny presets, transformers loading, original-format conversion."""

import json
import re

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoProcessor, GotOcr2ForConditionalGeneration

from got_lightning.cli import main
from got_lightning.model.loading import ModelDirError, load_model, read_weights
from got_lightning.model.original import KEY_RULES, ConversionError, convert_key
from got_lightning.model.presets import preset_config, random_model
from got_lightning.tokens import VOCAB_SIZE


def to_original_key(key: str) -> str:
    """Inverse of the documented mapping (test-side, written independently of `convert_key`)."""
    replacements = [
        ("model.vision_tower.patch_embed.projection.", "model.vision_tower_high.patch_embed.proj."),
        ("model.vision_tower.pos_embed", "model.vision_tower_high.pos_embed"),
        ("model.vision_tower.neck.conv1.", "model.vision_tower_high.neck.0."),
        ("model.vision_tower.neck.layer_norm1.", "model.vision_tower_high.neck.1."),
        ("model.vision_tower.neck.conv2.", "model.vision_tower_high.neck.2."),
        ("model.vision_tower.neck.layer_norm2.", "model.vision_tower_high.neck.3."),
        ("model.multi_modal_projector.conv_upsampler1.", "model.vision_tower_high.net_2."),
        ("model.multi_modal_projector.conv_upsampler2.", "model.vision_tower_high.net_3."),
        ("model.multi_modal_projector.multimodal_projector.", "model.mm_projector_vary."),
        ("model.language_model.", "model."),
    ]
    if key.startswith("model.vision_tower.layers."):
        key = key.replace("model.vision_tower.layers.", "model.vision_tower_high.blocks.")
        return key.replace(".layer_norm1.", ".norm1.").replace(".layer_norm2.", ".norm2.")
    for new, old in replacements:
        if key.startswith(new):
            return old + key[len(new):]
    return key


def write_original_dir(path, model, drop=(), extra=None):
    path.mkdir(parents=True)
    state = {to_original_key(k): v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    for key in drop:
        del state[key]
    state.update(extra or {})
    save_file(state, path / "model.safetensors")
    text = model.config.text_config
    config = {
        "architectures": ["GOTQwenForCausalLM"], "model_type": "GOT", "vocab_size": text.vocab_size,
        "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers, "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads, "rms_norm_eps": text.rms_norm_eps,
        "max_position_embeddings": text.max_position_embeddings, "tie_word_embeddings": True,
    }
    (path / "config.json").write_text(json.dumps(config))
    return path


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


def test_original_checkpoint_converts_to_identical_weights(tmp_path):
    model = random_model("micro", 2)
    source = write_original_dir(tmp_path / "original", model)
    assert all(k.startswith(("model.vision_tower_high", "model.mm_projector_vary", "model.embed", "model.layers", "model.norm"))
               for k in read_weights(source))
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
