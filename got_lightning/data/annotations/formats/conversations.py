"""Chat-style records of other fine-tuning tools to GOT's conversation form: ms-swift / OpenAI
`messages` and LLaMA-Factory `sharegpt` (with the keys its `dataset_info.json` names)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from got_lightning.data.annotations.index import NOTES_KEY
from got_lightning.data.annotations.records import GPT, HUMAN
from got_lightning.data.errors import AnnotationFileError, BadSampleError
from got_lightning.tokens import IMAGE_PLACEHOLDER

IGNORED_SYSTEM = "system message ignored (keep_system: false)"
IMAGE_PARTS = ("image", "image_url", "input_image")


def messages_to_got(obj: Any, keep_system: bool = False) -> dict:
    """`{"messages": [{"role", "content"}], "images": [...]}`: content a string or a list of
    `{"type": "image"}` / `{"type": "text", "text"}` parts (an image part may carry its path)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise BadSampleError("record must be an object with a 'messages' list")
    images = _image_list(obj.get("images", obj.get("image")))
    turns, system = [], None
    for number, message in enumerate(obj["messages"]):
        if not isinstance(message, dict):
            raise BadSampleError(f"messages[{number}] must be an object with 'role' and 'content'")
        role = message.get("role")
        text = _content(message.get("content"), number, images)
        if role in ("system", "developer"):
            system = text
            continue
        if role not in ("user", "assistant"):
            raise BadSampleError(f"messages[{number}] has role {role!r}; only system, user and assistant are read")
        turns.append({"from": HUMAN if role == "user" else GPT, "value": text})
    return _got_record(images, turns, system, keep_system)


@dataclass(frozen=True)
class ShareGptKeys:
    """The keys of a sharegpt record (LLaMA-Factory's defaults, or its dataset_info.json entry)."""

    messages: str = "conversations"
    images: str = "images"
    system: str = "system"
    role_tag: str = "from"
    content_tag: str = "value"
    user_tag: str = "human"
    assistant_tag: str = "gpt"
    system_tag: str = "system"

    @classmethod
    def from_dataset_info(cls, path: str | Path, file_name: str, dataset: str) -> ShareGptKeys:
        """The entry of `dataset_info.json` whose `file_name` is this file (else the one named like
        the dataset); its `columns` and `tags` override the defaults."""
        try:
            info = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise AnnotationFileError(f"dataset {dataset!r}: cannot read dataset_info {path}: {error}") from error
        entries = info if isinstance(info, dict) else {}
        entry = next(
            (e for e in entries.values() if isinstance(e, dict) and e.get("file_name") == file_name), entries.get(dataset)
        )
        if not isinstance(entry, dict):
            raise AnnotationFileError(
                f"dataset {dataset!r}: {path} has no entry with file_name {file_name!r} or named {dataset!r}"
            )
        keys = {**(entry.get("columns") or {}), **(entry.get("tags") or {})}
        known = {name: value for name, value in keys.items() if name in cls.__dataclass_fields__}
        return cls(**known)


def sharegpt_to_got(obj: Any, keys: ShareGptKeys = ShareGptKeys(), keep_system: bool = False) -> dict:
    """`{"conversations": [{"from": "human"|"gpt", "value"}], "images": [...], "system": ...}`."""
    if not isinstance(obj, dict) or not isinstance(obj.get(keys.messages), list):
        raise BadSampleError(f"record must be an object with a {keys.messages!r} list")
    images = _image_list(obj.get(keys.images))
    system = obj.get(keys.system)
    turns = []
    roles = {keys.user_tag: HUMAN, keys.assistant_tag: GPT}
    for number, turn in enumerate(obj[keys.messages]):
        if not isinstance(turn, dict):
            raise BadSampleError(f"{keys.messages}[{number}] must be an object")
        role, text = turn.get(keys.role_tag), turn.get(keys.content_tag)
        if role == keys.system_tag:
            system = text
            continue
        if role not in roles:
            raise BadSampleError(
                f"{keys.messages}[{number}] has role {role!r}; expected {keys.user_tag!r} or {keys.assistant_tag!r}"
            )
        turns.append({"from": roles[role], "value": text})
    return _got_record(images, turns, system, keep_system)


def _image_list(value: Any) -> list[str]:
    if value is None:
        return []
    value = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(value, list):
        raise BadSampleError(f"'images' must be a list of paths, got {value!r:.80}")
    paths = []
    for item in value:
        path = item.get("path") if isinstance(item, dict) else item
        if not isinstance(path, str) or not path:
            raise BadSampleError(f"'images' entries must be paths (or objects with a 'path'), got {item!r:.80}")
        paths.append(path)
    return paths


def _content(content: Any, number: int, images: list[str]) -> str:
    """A message's text, image parts as `<image>` (an image part that names its file adds it)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadSampleError(f"messages[{number}].content must be a string or a list of parts")
    text = ""
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            text += part["text"]
        elif kind in IMAGE_PARTS:
            named = part.get(kind)
            named = named.get("url") if isinstance(named, dict) else named
            if isinstance(named, str) and named:
                images.append(named)
            text += IMAGE_PLACEHOLDER
        else:
            raise BadSampleError(f"messages[{number}] has a content part of type {kind!r}; expected text or image")
    return text


def _got_record(images: list[str], turns: list[dict], system: Any, keep_system: bool) -> dict:
    if not images:
        raise BadSampleError("record has no image")
    if turns and not any(IMAGE_PLACEHOLDER in str(turn["value"]) for turn in turns if turn["from"] == HUMAN):
        turns[0] = {**turns[0], "value": f"{IMAGE_PLACEHOLDER}\n{turns[0]['value']}"}
    record: dict[str, Any] = {"image": images if len(images) > 1 else images[0], "conversations": turns}
    if system is not None:
        if keep_system:
            record["system"] = system
        else:
            record[NOTES_KEY] = [IGNORED_SYSTEM]
    return record
