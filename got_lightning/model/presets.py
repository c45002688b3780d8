"""Named model sizes: the real GOT layout and tiny random models for the demo and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from got_lightning.core.errors import SettingError
from got_lightning.tokens import IMG_PAD_ID, VOCAB_SIZE

if TYPE_CHECKING:
    from transformers import GotOcr2Config, GotOcr2ForConditionalGeneration

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The released GOT-OCR2.0: ViTDet-B at 1024 px, Qwen2-0.5B-like decoder (580M parameters).
    "got": {
        "vision": {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "mlp_dim": 3072,
            "image_size": 1024,
            "patch_size": 16,
            "window_size": 14,
            "global_attn_indexes": [2, 5, 8, 11],
            "output_channels": 256,
        },
        "text": {
            "hidden_size": 1024,
            "intermediate_size": 2816,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "num_key_value_heads": 16,
        },
    },
    # Small enough to train on two CPU cores in minutes; 256 px tiles give 16 image tokens.
    "tiny": {
        "vision": {
            "hidden_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "mlp_dim": 192,
            "image_size": 256,
            "patch_size": 16,
            "window_size": 4,
            "global_attn_indexes": [1],
            "output_channels": 64,
        },
        "text": {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
        },
    },
    # The smallest model that still runs every code path (unit tests).
    "micro": {
        "vision": {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 64,
            "image_size": 64,
            "patch_size": 16,
            "window_size": 2,
            "global_attn_indexes": [1],
            "output_channels": 16,
        },
        "text": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        },
    },
}
# The real encoder (ViTDet-B, 1024 px, 256 tokens per tile) with the tiny decoder: real image size
# on a CPU (feature-cache benchmark).
PRESETS["encoder1024"] = {"vision": PRESETS["got"]["vision"], "text": PRESETS["tiny"]["text"]}


def preset_config(preset: str) -> GotOcr2Config:
    """The transformers config of a named preset."""
    from transformers import GotOcr2Config

    if preset not in PRESETS:
        raise SettingError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    sizes = PRESETS[preset]
    small = preset != "got"
    vision = dict(sizes["vision"], initializer_range=0.02 if small else 1e-10)
    text = dict(
        sizes["text"],
        model_type="qwen2",
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_cache=True,
    )
    return GotOcr2Config(
        vision_config=vision,
        text_config=text,
        image_token_index=IMG_PAD_ID,
        image_seq_length=image_tokens_per_tile(vision["image_size"]),
        tie_word_embeddings=True,
    )


def image_tokens_per_tile(image_size: int) -> int:
    """Patch 16, then two stride-2 convolutions: one image token per 64x64 pixels of a tile."""
    return (image_size // 64) ** 2


def random_model(preset: str, seed: int = 0) -> GotOcr2ForConditionalGeneration:
    """A randomly initialised model of a preset; the same seed always gives the same weights."""
    import torch
    from transformers import GotOcr2ForConditionalGeneration

    config = preset_config(preset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GotOcr2ForConditionalGeneration(config)
        if preset != "got":
            _scale_preserving_projector(model)
    return model.eval()


def _scale_preserving_projector(model: GotOcr2ForConditionalGeneration) -> None:
    """Re-initialise the projector with std 1/sqrt(fan_in) (LeCun normal).

    With transformers' std 0.02 its three layers shrink the encoder's unit-scale output about
    15-fold, so a random model's image features drown in the decoder's residual stream and it
    never learns to read the page (measured on the demo: held-out accuracy stays at chance).
    """
    import torch

    for layer in model.model.multi_modal_projector.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = layer.weight[0].numel()
            torch.nn.init.normal_(layer.weight, std=fan_in**-0.5)
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)
