"""GOT's `conv_mpt` prompt as token ids, with labels supervising only the answers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedTokenizerBase

from got_lightning.core.errors import SettingError
from got_lightning.data.annotations.records import GPT, Record
from got_lightning.data.errors import BadSampleError
from got_lightning.tokens import (
    IGNORE_INDEX,
    IM_END_ID,
    IM_START_ID,
    IMAGE_PLACEHOLDER,
    IMG_END_ID,
    IMG_PAD_ID,
    IMG_START_ID,
    ROLE_ASSISTANT,
    ROLE_USER,
    SYSTEM_PROMPT,
)

log = logging.getLogger(__name__)

OverlengthPolicy = Literal["skip", "truncate"]
OVERLENGTH_POLICIES: tuple[str, ...] = ("skip", "truncate")


@dataclass(frozen=True)
class TokenizedSample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    answers_kept: int = 0
    """How many answers (gpt turns), counted from the first, have tokens in `input_ids`."""


class PromptBuilder:
    """Builds `<|im_start|>system\\n...<|im_end|><|im_start|>user\\n...<|im_end|><|im_start|>assistant\\n...`.

    Each `<image>` becomes `<img>` + `<imgpad>` x (tokens_per_tile x tiles) + `</img>`. Everything
    but the answers and their `<|im_end|>` is labelled -100. The assistant header is tokenized on
    its own, exactly as at inference, so the answer's first token never merges with it.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        tokens_per_tile: int,
        model_max_length: int,
        overlength: OverlengthPolicy = "skip",
    ) -> None:
        if overlength not in OVERLENGTH_POLICIES:
            raise SettingError(f"overlength must be one of {', '.join(OVERLENGTH_POLICIES)}, got {overlength!r}")
        self.tokenizer = tokenizer
        self.tokens_per_tile = tokens_per_tile
        self.model_max_length = model_max_length
        self.overlength = overlength
        self._system = self._system_turn(SYSTEM_PROMPT)
        self._assistant_header = [IM_START_ID, *self._encode(f"{ROLE_ASSISTANT}\n")]

    def _system_turn(self, text: str) -> list[int]:
        return [IM_START_ID, *self._encode(f"system\n{text}"), IM_END_ID]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def image_block(self, tiles: int) -> list[int]:
        return [IMG_START_ID, *[IMG_PAD_ID] * (self.tokens_per_tile * tiles), IMG_END_ID]

    def _user_turn(self, text: str, blocks: list[list[int]]) -> list[int]:
        pieces = text.split(IMAGE_PLACEHOLDER)
        ids = [IM_START_ID, *self._encode(f"{ROLE_USER}\n{pieces[0]}")]
        for piece in pieces[1:]:
            ids += blocks.pop(0)
            ids += self._encode(piece)
        return ids + [IM_END_ID]

    def build(self, record: Record, tiles_per_placeholder: list[int]) -> TokenizedSample:
        """Token ids and labels for a record whose placeholders hold these many tiles each."""
        blocks = [self.image_block(tiles) for tiles in tiles_per_placeholder]
        system = self._system if record.system is None else self._system_turn(record.system)
        segments: list[tuple[list[int], bool]] = [(system, False)]
        for turn in record.turns:
            if turn.role == GPT:
                segments.append((self._assistant_header, False))
                segments.append((self._encode(turn.text) + [IM_END_ID], True))
            else:
                segments.append((self._user_turn(turn.text, blocks), False))
        total = sum(len(ids) for ids, _ in segments)
        if total <= self.model_max_length:
            return _join(segments, total)
        if self.overlength == "skip":
            raise BadSampleError(
                f"over-length: {total} tokens > model_max_length {self.model_max_length} "
                "(overlength: skip; set overlength: truncate to cut the answer text instead)"
            )
        return self._truncate(segments, total)

    def _truncate(self, segments: list[tuple[list[int], bool]], total: int) -> TokenizedSample:
        """Keep whole prompt segments and cut only answer text; the cut answer keeps no `<|im_end|>`
        so the model never learns to stop mid-text."""
        kept: list[tuple[list[int], bool]] = []
        room = self.model_max_length
        for ids, supervised in segments:
            if len(ids) <= room:
                kept.append((ids, supervised))
                room -= len(ids)
                continue
            if supervised and room > 0:
                kept.append((ids[:room], True))
            break
        while kept and not kept[-1][1]:
            kept.pop()
        if not kept:
            raise BadSampleError(
                f"over-length: {total} tokens > model_max_length {self.model_max_length} and no answer token "
                "fits after the prompt and image tokens (image tokens are never truncated)"
            )
        log.warning(
            "sample truncated from %d to %d tokens (model_max_length %d)",
            total,
            sum(len(i) for i, _ in kept),
            self.model_max_length,
        )
        return _join(kept, sum(len(ids) for ids, _ in kept), truncated=True)


def _join(segments: list[tuple[list[int], bool]], total: int, truncated: bool = False) -> TokenizedSample:
    input_ids: list[int] = []
    labels: list[int] = []
    for ids, supervised in segments:
        input_ids += ids
        labels += ids if supervised else [IGNORE_INDEX] * len(ids)
    return TokenizedSample(input_ids, labels, truncated, answers_kept=sum(supervised for _, supervised in segments))
