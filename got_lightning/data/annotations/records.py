"""One annotation record in GOT's conversation format, validated."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from got_lightning.data.errors import BadSampleError
from got_lightning.tokens import IMAGE_PLACEHOLDER, RESERVED_IN_TEXT

HUMAN = "human"
GPT = "gpt"


@dataclass(frozen=True)
class Turn:
    """One conversation turn: `human` (masked) or `gpt` (supervised)."""

    role: str
    text: str


@dataclass(frozen=True)
class Record:
    """A validated record: image references as written and alternating human/gpt turns."""

    images: tuple[str, ...]
    turns: tuple[Turn, ...]
    system: str | None = None
    """A system prompt of the record's own (None: GOT's)."""

    @property
    def placeholders(self) -> int:
        return sum(turn.text.count(IMAGE_PLACEHOLDER) for turn in self.turns)

    @property
    def image_key(self) -> str:
        """Normalized image reference: the held-out split is decided by its hash."""
        return "|".join(normalize_image_ref(image) for image in self.images)

    @property
    def answer_chars(self) -> int:
        return sum(len(turn.text) for turn in self.turns if turn.role == GPT)


def normalize_image_ref(image: str) -> str:
    """The same path however it is written: forward slashes, no `./` or `a/../`."""
    return posixpath.normpath(image.replace("\\", "/"))


def _lone_surrogate(text: str) -> int | None:
    """Offset of the first lone UTF-16 surrogate (JSON allows `\\ud800`; no tokenizer or file system does)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def _parse_images(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise BadSampleError(f"'image' must be a path or a non-empty list of paths, got {value!r:.80}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise BadSampleError(f"'image' entries must be non-empty strings, got {item!r:.80}")
        if "\x00" in item:
            raise BadSampleError(f"'image' path contains a NUL character: {item!r:.80}")
        if (offset := _lone_surrogate(item)) is not None:
            raise BadSampleError(f"'image' path is not valid Unicode (lone surrogate at character {offset}): {item!r:.80}")
    return tuple(value)


def _reserved_token(text: str) -> str | None:
    """The first reserved token written in a text (most texts have no `<` at all: one scan)."""
    if "<" not in text:
        return None
    return next((token for token in RESERVED_IN_TEXT if token in text), None)


def _parse_turns(value: Any) -> tuple[Turn, ...]:
    if not isinstance(value, list) or not value:
        raise BadSampleError(f"'conversations' must be a non-empty list, got {value!r:.80}")
    turns = []
    for position, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(role := item.get("from"), str) or "value" not in item:
            raise BadSampleError(f"turn {position} must be an object with 'from' and 'value', got {item!r:.80}")
        text = item["value"]
        expected = GPT if position % 2 else HUMAN
        if role != expected:
            if role not in (HUMAN, GPT):
                raise BadSampleError(f"turn {position} has role {role!r}; only 'human' and 'gpt' are allowed")
            raise BadSampleError(f"turn {position} is {role!r} but turns must alternate human, gpt, human, ...")
        if not isinstance(text, str):
            raise BadSampleError(f"turn {position} value must be a string, got {type(text).__name__}")
        if (offset := _lone_surrogate(text)) is not None:
            raise BadSampleError(f"turn {position} is not valid Unicode (lone surrogate at character {offset})")
        if (token := _reserved_token(text)) is not None:
            raise BadSampleError(f"turn {position} contains the reserved token {token!r} in its text")
        if role == GPT:
            if not text.strip():
                raise BadSampleError(f"turn {position} has an empty answer")
            if IMAGE_PLACEHOLDER in text:
                raise BadSampleError(f"turn {position} is an answer containing {IMAGE_PLACEHOLDER}")
        turns.append(Turn(role, text))
    if turns[-1].role != GPT:
        raise BadSampleError("conversation ends with a human turn that has no answer")
    return tuple(turns)


def _parse_system(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadSampleError(f"'system' must be a non-empty string, got {value!r:.80}")
    if (token := _reserved_token(value)) is not None:
        raise BadSampleError(f"'system' contains the reserved token {token!r}")
    return value


def parse_record(obj: Any) -> Record:
    """Validate one decoded JSON record; raise `BadSampleError` naming what is wrong."""
    if not isinstance(obj, dict):
        raise BadSampleError(f"record must be a JSON object, got {type(obj).__name__}")
    missing = [key for key in ("image", "conversations") if key not in obj]
    if missing:
        raise BadSampleError(f"record has no {' or '.join(repr(k) for k in missing)}")
    images = _parse_images(obj["image"])
    turns = _parse_turns(obj["conversations"])
    record = Record(images=images, turns=turns, system=_parse_system(obj.get("system")))
    placeholders = record.placeholders
    if placeholders == 0:
        raise BadSampleError(f"no {IMAGE_PLACEHOLDER} placeholder in the human turns", image=images[0])
    if placeholders > len(images):
        raise BadSampleError(f"{placeholders} {IMAGE_PLACEHOLDER} placeholders for {len(images)} image(s)", images[0])
    if placeholders not in (1, len(images)):
        raise BadSampleError(
            f"{placeholders} {IMAGE_PLACEHOLDER} placeholders for {len(images)} images: use one placeholder "
            "(all images as tiles of one block) or one per image",
            image=images[0],
        )
    return record


def image_of(obj: Any) -> str | None:
    """The first image reference of a raw record, for error messages; None where there is none."""
    if isinstance(obj, dict):
        value = obj.get("image")
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and isinstance(value[0], str):
            return value[0]
    return None
