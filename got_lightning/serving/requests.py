"""HTTP request bodies to page jobs: OpenAI chat messages or `/predict` fields, every check made
before a request joins a batch, so that a bad one fails alone with a one-line reason."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from got_lightning.data.annotations.records import GPT, HUMAN, Record, Turn, parse_record
from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.decode import EncodedImage, resolve_image_path
from got_lightning.data.predict import PredictPrompt
from got_lightning.data.sample import ResolvedImage
from got_lightning.tokens import IMAGE_PLACEHOLDER

MULTI_CROP_QUERY = "OCR with format upon the patch reference: "
DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)", re.DOTALL)
IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/tiff": "tiff", "image/webp": "webp"}
SAMPLING = {"temperature": 0, "top_p": 1, "n": 1, "presence_penalty": 0, "frequency_penalty": 0}


class RequestError(Exception):
    """A request the server refuses: HTTP status, one-line message, the field at fault."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape."""
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ServeLimits:
    """What every request is checked against.

    Args:
        model_name: The id `/v1/models` lists; a request naming another model is refused.
        max_new_tokens: Answer tokens when a request does not say (`max_tokens`).
        max_tokens_limit: The most a request may ask for.
        local_files: The folder plain paths may be read from (None: no local files).
        tiles_by_default: The configured image mode is `tiles` (the multi-crop prompt by default).
    """

    model_name: str
    max_new_tokens: int
    max_tokens_limit: int
    local_files: Path | None = None
    tiles_by_default: bool = False


@dataclass(frozen=True)
class PageRequest:
    """One page to read: the conversation with its `<image>`, the image, the mode and the limit."""

    record: Record
    image: ResolvedImage
    tiles: bool
    max_new_tokens: int
    stream: bool = False
    include_usage: bool = False


def chat_request(body: Any, limits: ServeLimits) -> PageRequest:
    """An OpenAI `chat/completions` body: one image in the user's messages, greedy decoding."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if model not in (None, "", limits.model_name):
        raise RequestError(
            f"model {model!r} is not served here; this server serves {limits.model_name!r}", 404, "model", "model_not_found"
        )
    for name, greedy in SAMPLING.items():
        value = body.get(name)
        if value is not None and value != greedy:
            raise RequestError(
                f"{name}={value!r} is not supported: this server decodes greedily "
                "(temperature 0 or absent, top_p 1, n 1, no penalties)",
                param=name,
                code="unsupported_parameter",
            )
    stream = _flag(body, "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError("stream_options must be an object", param="stream_options")
    turns, image = _turns(body.get("messages"), limits)
    record = _record(turns, image.ref, PredictPrompt().text(None, limits.tiles_by_default).removeprefix(f"{IMAGE_PLACEHOLDER}\n"))
    tiles = any(MULTI_CROP_QUERY in turn.text for turn in record.turns if turn.role == HUMAN)
    return PageRequest(record, image, tiles, _max_tokens(body, limits), stream, bool(options.get("include_usage")))


def predict_request(
    fields: dict[str, Any], image: ResolvedImage, limits: ServeLimits, page_size: Callable[[ResolvedImage], tuple[int, int]]
) -> PageRequest:
    """`POST /predict`: an image with predict's prompt fields (`ocr_type`, `box` in pixels of the
    page, `color`, `multi_crop`) and `max_tokens`; `page_size` reads the page's size for a box."""
    known = {"ocr_type", "box", "color", "multi_crop", "max_tokens", "image", "file"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise RequestError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known - {'file'}))}", param=unknown[0]
        )
    box = fields.get("box")
    if isinstance(box, str):
        try:
            box = [int(float(value)) for value in box.strip("[] ").split(",")]
        except ValueError as error:
            raise RequestError(f"box must be x1,y1,x2,y2 in pixels, got {box!r:.60}", param="box") from error
    ocr_type = fields.get("ocr_type") or "ocr"
    if ocr_type not in ("ocr", "format"):
        raise RequestError(f"ocr_type must be ocr or format, got {ocr_type!r:.40}", param="ocr_type")
    try:
        prompt = PredictPrompt(ocr_type=ocr_type, box=box, color=fields.get("color") or None)
    except (ValueError, TypeError) as error:
        raise RequestError(str(error), param="color" if "color" in str(error) else "box") from error
    multi_crop = fields.get("multi_crop")
    tiles = limits.tiles_by_default if multi_crop in (None, "") else _truthy(multi_crop, "multi_crop")
    size = None
    if box is not None:
        try:
            size = page_size(image)
        except BadSampleError as error:
            raise RequestError(error.reason, param="image") from error
    record = Record((image.ref,), (Turn(HUMAN, prompt.text(size, tiles)), Turn(GPT, "")))
    return PageRequest(record, image, tiles, _max_tokens(fields, limits))


def image_from_url(url: Any, limits: ServeLimits) -> ResolvedImage:
    """An `image_url`: a base64 `data:` URL, or a local path (plain or `file://`) under the
    allowed folder. The server never fetches remote URLs."""
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str) or not url:
        raise RequestError("image_url must be a string or an object with a 'url' string", param="image_url")
    if url.startswith("data:"):
        return ResolvedImage("upload", (decode_data_url(url),))
    scheme = urlparse(url).scheme
    if scheme in ("http", "https"):
        raise RequestError("remote image URLs are not fetched: send the image as a base64 data: URL", param="image_url")
    if scheme == "file":
        url = unquote(urlparse(url).path)
    elif scheme and len(scheme) > 1:
        raise RequestError(f"unsupported image_url scheme {scheme!r}: use a base64 data: URL", param="image_url")
    return local_image(url, limits)


def local_image(path: str, limits: ServeLimits) -> ResolvedImage:
    """A file under `--allow_local_files` (symlinks and `..` resolved before the check)."""
    if limits.local_files is None:
        raise RequestError(
            "local file paths are off: send a base64 data: URL, or start the server with --allow_local_files DIR",
            param="image_url",
        )
    try:
        resolved = resolve_image_path(limits.local_files, path, allow_outside_root=False)
    except BadSampleError as error:
        reason = error.reason.replace("image_root", "--allow_local_files").split("; set allow_outside_root")[0]
        raise RequestError(reason, param="image_url") from error
    if not resolved.is_file():
        raise RequestError(f"not a file: {path}", param="image_url")
    return ResolvedImage(path, (resolved,))


def decode_data_url(url: str) -> EncodedImage:
    match = DATA_URL.fullmatch(url)
    if not match:
        raise RequestError("image_url data: URLs must be base64 (data:image/png;base64,...)", param="image_url")
    mime = (match["mime"] or "").lower()
    if mime not in IMAGE_TYPES:
        raise RequestError(f"unsupported image type {mime or 'none'!r}: send PNG, JPEG, TIFF or WebP", param="image_url")
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(f"image_url is not valid base64: {error}", param="image_url") from error
    return EncodedImage(f"upload.{IMAGE_TYPES[mime]}", data)


def _turns(messages: Any, limits: ServeLimits) -> tuple[list[tuple[str, str]], ResolvedImage]:
    """(role, text) per non-system message, the image part as `<image>\\n` where it stood."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    turns: list[tuple[str, str]] = []
    images: list[ResolvedImage] = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{position}] must be an object", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            continue  # GOT's own system prompt stays: it is what the model was trained with
        if role not in ("user", "assistant"):
            raise RequestError(f"messages[{position}] has role {role!r}; supported: system, user, assistant", param="messages")
        text, found = _content(message.get("content"), position, limits)
        images += found
        turns.append((HUMAN if role == "user" else GPT, text))
    if not turns or turns[-1][0] != HUMAN:
        raise RequestError("no user message to answer: the last message must be the user's", param="messages")
    if len(images) != 1:
        raise RequestError(
            f"one image per request is read, this one has {len(images)} (an image_url content part)", param="messages"
        )
    return turns, images[0]


def _content(content: Any, position: int, limits: ServeLimits) -> tuple[str, list[ResolvedImage]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise RequestError(f"messages[{position}].content must be a string or a list of parts", param="messages")
    text, images = "", []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            text += part["text"]
        elif kind == "image_url":
            images.append(image_from_url(part.get("image_url"), limits))
            text += f"{IMAGE_PLACEHOLDER}\n"
        else:
            raise RequestError(
                f"unknown content part {kind!r:.40} in messages[{position}]; supported: text, image_url", param="messages"
            )
    return text, images


def _record(turns: list[tuple[str, str]], image_ref: str, default_query: str) -> Record:
    """The conversation as a record, checked as annotation records are (reserved tokens, turn
    order, one `<image>`), the answer still to come; an image sent without a question is asked
    `default_query`."""
    conversation = []
    expected = HUMAN
    for role, text in turns:
        if role != expected:  # two user messages in a row read as one turn
            if not conversation:
                raise RequestError("the conversation starts with an assistant message", param="messages")
            conversation[-1]["value"] += "\n" + text
            continue
        if role == HUMAN and IMAGE_PLACEHOLDER in text and not text.replace(f"{IMAGE_PLACEHOLDER}\n", "").strip():
            text += default_query
        conversation.append({"from": role, "value": text})
        expected = GPT if role == HUMAN else HUMAN
    conversation.append({"from": GPT, "value": "pending"})
    try:
        record = parse_record({"image": [image_ref], "conversations": conversation})
    except BadSampleError as error:
        raise RequestError(error.reason, param="messages") from error
    return Record(record.images, (*record.turns[:-1], Turn(GPT, "")))


def _max_tokens(body: dict[str, Any], limits: ServeLimits) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    if value in (None, ""):
        return limits.max_new_tokens
    try:
        tokens = int(value)
    except (TypeError, ValueError) as error:
        raise RequestError(f"max_tokens must be a whole number, got {value!r:.40}", param="max_tokens") from error
    if not 1 <= tokens <= limits.max_tokens_limit:
        raise RequestError(f"max_tokens must be between 1 and {limits.max_tokens_limit}, got {tokens}", param="max_tokens")
    return tokens


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value in (None, False, True):
        return bool(value)
    raise RequestError(f"{name} must be true or false", param=name)


def _truthy(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise RequestError(f"{name} must be true or false, got {value!r:.40}", param=name)
