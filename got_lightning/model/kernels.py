"""How the language model runs: its attention kernel and `torch.compile` of its layers (the vision
tower has its own attention, with relative positions, and stays as it is)."""

from __future__ import annotations

from typing import Literal

from transformers import GotOcr2ForConditionalGeneration

from got_lightning.core.errors import SettingError

AttentionName = Literal["sdpa", "eager", "flash_attention_2", "flex_attention"]


def set_text_attention(model: GotOcr2ForConditionalGeneration, implementation: AttentionName) -> None:
    """Switch the language model's attention kernel (`flash_attention_2` needs the flash-attn
    package and a CUDA GPU)."""
    try:
        model.model.language_model.set_attn_implementation(implementation)
    except (ImportError, ValueError) as error:
        raise SettingError(f"model.attn_implementation {implementation!r} cannot be used: {error}") from error


def compile_text_layers(model: GotOcr2ForConditionalGeneration) -> None:
    """`torch.compile` each decoder layer in place: one graph serves every layer, so compiling
    takes seconds rather than minutes, and parameter names (checkpoints) do not change. Shapes are
    dynamic from the start, since batches differ in length."""
    for layer in model.model.language_model.layers:
        layer.compile(dynamic=True)
