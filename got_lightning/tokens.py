"""GOT-OCR2.0 token layout and prompt strings (upstream `conv_mpt`)."""

from __future__ import annotations

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
IMG_START = "<img>"
IMG_END = "</img>"
IMG_PAD = "<imgpad>"
IMAGE_PLACEHOLDER = "<image>"

FIRST_SPECIAL_ID = 151643
EXTRA_TOKENS = tuple(f"<|extra_{i}|>" for i in range(205))
SPECIAL_TOKENS: tuple[str, ...] = (
    (ENDOFTEXT, IM_START, IM_END)
    + EXTRA_TOKENS
    + ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", IMG_START, IMG_END, IMG_PAD)
)
SPECIAL_TOKEN_IDS: dict[str, int] = {tok: FIRST_SPECIAL_ID + i for i, tok in enumerate(SPECIAL_TOKENS)}
VOCAB_SIZE = FIRST_SPECIAL_ID + len(SPECIAL_TOKENS)

PAD_ID = SPECIAL_TOKEN_IDS[ENDOFTEXT]
IM_START_ID = SPECIAL_TOKEN_IDS[IM_START]
IM_END_ID = SPECIAL_TOKEN_IDS[IM_END]
IMG_START_ID = SPECIAL_TOKEN_IDS[IMG_START]
IMG_END_ID = SPECIAL_TOKEN_IDS[IMG_END]
IMG_PAD_ID = SPECIAL_TOKEN_IDS[IMG_PAD]

# Tokens whose literal text inside a conversation would break the prompt structure.
RESERVED_IN_TEXT = (ENDOFTEXT, IM_START, IM_END, IMG_START, IMG_END, IMG_PAD)

SYSTEM_PROMPT = "You should follow the instructions carefully and explain your answers in detail."
ROLE_USER = "user"
ROLE_ASSISTANT = "assistant"

IGNORE_INDEX = -100

# Original Qwen pre-tokenizer: numbers split into single digits (`\p{N}`).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
