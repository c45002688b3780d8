"""GOT's forward pass in two halves, one code path for training, validation, generation and
serving: pages to projected tile features (the vision tower, frozen or not, cached or not, in
bounded chunks), and the language model over prompts whose image positions take those features."""

from __future__ import annotations

from typing import Any

import torch
from transformers import GotOcr2ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutputWithPooling

from got_lightning.model.feature_cache import VisionFeatureCache


class ImageEncoder:
    """Projected tile features `(tiles, tokens_per_tile, hidden)` of a batch's pixel values.

    A frozen tower runs without gradients; with a feature cache each tile is encoded once; at most
    `vision_batch_size` tiles go through the tower per call (none: all at once)."""

    def __init__(
        self,
        got: GotOcr2ForConditionalGeneration,
        frozen_tower: bool,
        vision_batch_size: int | None = None,
        feature_cache: VisionFeatureCache | None = None,
    ) -> None:
        self.got = got
        self.frozen_tower = frozen_tower
        self.vision_batch_size = vision_batch_size
        self.feature_cache = feature_cache

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tower = self.got.model.vision_tower
        pixel_values = pixel_values.to(tower.patch_embed.projection.weight.dtype)
        if self.feature_cache is not None:
            with torch.no_grad():
                vision = self.feature_cache.features(pixel_values, self.encode_tiles)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_tower):
                vision = self.encode_tiles(pixel_values)
        return self.got.model.multi_modal_projector(vision)

    def encode_tiles(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The vision tower's output, `vision_batch_size` tiles per call."""
        tower = self.got.model.vision_tower
        chunk = self.vision_batch_size
        if not chunk or len(pixel_values) <= chunk:
            return tower(pixel_values).last_hidden_state
        vision = torch.cat([tower(tiles).last_hidden_state for tiles in pixel_values.split(chunk)])
        # The tower hands out NHWC memory viewed as NCHW: keep that layout, so the projector's
        # arithmetic is the same as for one call.
        return vision.contiguous(memory_format=torch.channels_last) if vision.dim() == 4 else vision


def read_prompts(
    got: GotOcr2ForConditionalGeneration,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    image_features: torch.Tensor,
    **options: Any,
) -> Any:
    """The language model over prompts whose `<imgpad>` positions take `image_features` (the
    output of `ImageEncoder`, stacked in order); `options` go to transformers' decoder as they are
    (positions, cache)."""
    return got.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=image_features)},
        **options,
    )
