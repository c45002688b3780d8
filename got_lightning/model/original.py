"""The original GOT checkpoint layout (`GOTQwenForCausalLM`, remote code) to transformers' `got_ocr2`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from got_lightning.tokens import IMG_PAD_ID

if TYPE_CHECKING:
    import torch
    from transformers import GotOcr2Config

# (original key pattern, transformers replacement), applied in order to the start of each key.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^model\.vision_tower_high\.pos_embed", "model.vision_tower.pos_embed"),
    (r"^model\.vision_tower_high\.patch_embed\.proj\.", "model.vision_tower.patch_embed.projection."),
    (r"^model\.vision_tower_high\.blocks\.(\d+)\.norm1\.", r"model.vision_tower.layers.\1.layer_norm1."),
    (r"^model\.vision_tower_high\.blocks\.(\d+)\.norm2\.", r"model.vision_tower.layers.\1.layer_norm2."),
    (r"^model\.vision_tower_high\.blocks\.(\d+)\.(attn|mlp)\.", r"model.vision_tower.layers.\1.\2."),
    (r"^model\.vision_tower_high\.neck\.0\.", "model.vision_tower.neck.conv1."),
    (r"^model\.vision_tower_high\.neck\.1\.", "model.vision_tower.neck.layer_norm1."),
    (r"^model\.vision_tower_high\.neck\.2\.", "model.vision_tower.neck.conv2."),
    (r"^model\.vision_tower_high\.neck\.3\.", "model.vision_tower.neck.layer_norm2."),
    (r"^model\.vision_tower_high\.net_2\.", "model.multi_modal_projector.conv_upsampler1."),
    (r"^model\.vision_tower_high\.net_3\.", "model.multi_modal_projector.conv_upsampler2."),
    (r"^model\.mm_projector_vary\.", "model.multi_modal_projector.multimodal_projector."),
    (r"^model\.(embed_tokens|layers|norm)\.", r"model.language_model.\1."),
    (r"^lm_head\.", "lm_head."),
)
ORIGINAL_MARKER = "model.vision_tower_high."


def is_original_state_dict(keys: list[str] | Mapping[str, Any]) -> bool:
    """Whether a state dict uses the original GOT key names."""
    return any(key.startswith(ORIGINAL_MARKER) for key in keys)


def convert_key(key: str) -> str | None:
    """The transformers name of an original key; None when no rule applies."""
    for pattern, replacement in KEY_RULES:
        converted, count = re.subn(pattern, replacement, key)
        if count:
            return converted
    return None


def convert_state_dict(original: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Renamed tensors, and the original keys no rule maps."""
    converted, unmapped = {}, []
    for key, tensor in original.items():
        new_key = convert_key(key)
        if new_key is None:
            unmapped.append(key)
        else:
            converted[new_key] = tensor
    return converted, unmapped


def infer_config(state_dict: Mapping[str, torch.Tensor], original_config: Mapping[str, Any]) -> GotOcr2Config:
    """A transformers config for converted weights: vision sizes read off the tensors (the original
    code hard-codes them), text sizes from the original `config.json`."""
    from transformers import GotOcr2Config

    prefix = "model.vision_tower."
    blocks = sorted({int(k.split(".")[3]) for k in state_dict if k.startswith(prefix + "layers.")})
    hidden = state_dict[prefix + "patch_embed.projection.weight"].shape[0]
    patch = state_dict[prefix + "patch_embed.projection.weight"].shape[-1]
    grid = state_dict[prefix + "pos_embed"].shape[1]
    head_dim = state_dict[f"{prefix}layers.{blocks[0]}.attn.rel_pos_h"].shape[1]
    rel_sizes = [state_dict[f"{prefix}layers.{n}.attn.rel_pos_h"].shape[0] for n in blocks]
    global_blocks = [n for n, size in zip(blocks, rel_sizes) if size == 2 * grid - 1]
    window_sizes = {(size + 1) // 2 for n, size in zip(blocks, rel_sizes) if n not in global_blocks}
    vision = {
        "hidden_size": hidden,
        "num_hidden_layers": len(blocks),
        "num_attention_heads": hidden // head_dim,
        "mlp_dim": state_dict[f"{prefix}layers.{blocks[0]}.mlp.lin1.weight"].shape[0],
        "image_size": grid * patch,
        "patch_size": patch,
        "window_size": window_sizes.pop() if window_sizes else 14,
        "global_attn_indexes": global_blocks,
        "output_channels": state_dict[prefix + "neck.conv1.weight"].shape[0],
    }
    text_keys = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "rope_theta",
        "rms_norm_eps",
        "tie_word_embeddings",
    )
    text = {key: original_config[key] for key in text_keys if key in original_config}
    text["model_type"] = "qwen2"
    return GotOcr2Config(
        vision_config=vision,
        text_config=text,
        image_token_index=IMG_PAD_ID,
        image_seq_length=(grid * patch // 64) ** 2,
        tie_word_embeddings=original_config.get("tie_word_embeddings", True),
    )
