"""The HTTP side: OpenAI's `/v1/chat/completions` (streamed or not) and `/v1/models`, `/predict`
(an upload in, a `predictions.jsonl` line out) and `/health`, on FastAPI. Every request is checked
and its image decoded before it reaches an engine; errors are OpenAI's one-line JSON shape."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.decode import EncodedImage
from got_lightning.data.sample import ResolvedImage, SampleBuilder
from got_lightning.evaluation.results import prediction_line
from got_lightning.generation.batch import Answer
from got_lightning.generation.greedy import decode
from got_lightning.generation.prompts import last_answer_span
from got_lightning.serving.engine import EngineError, EnginePool, Job
from got_lightning.serving.requests import (
    PageRequest,
    RequestError,
    ServeLimits,
    chat_request,
    decode_data_url,
    local_image,
    predict_request,
)


@dataclass
class ServedModel:
    """What the routes need: the engines, the sample builders (plain and multi-crop), the
    tokenizer, the limits and the largest body accepted."""

    engines: EnginePool
    builder: SampleBuilder
    tiles_builder: SampleBuilder
    tokenizer: Any
    limits: ServeLimits
    max_request_bytes: int

    def sample(self, request: PageRequest) -> dict[str, Any]:
        """The model inputs of a request, its image decoded in full (a bad one raises here)."""
        builder = self.tiles_builder if request.tiles else self.builder
        try:
            sample = builder.build_resolved(request.record, [request.image])
        except BadSampleError as error:
            raise RequestError(error.reason, param="image_url") from error
        sample["key"] = ("serve", 0)
        return sample


def error_response(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413, before it is read in full."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await error_response(self._too_large())(scope, receive, send)
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> RequestError:
        megabytes = self.max_bytes / 2**20
        return RequestError(f"request body over --max_request_mb {megabytes:g} MB", 413, code="request_too_large")


def build_app(served: ServedModel) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        served.engines.start()
        yield
        await run_in_threadpool(served.engines.stop)  # after the requests in flight are answered

    app = FastAPI(title="got-lightning", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=served.max_request_bytes)

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(
            RequestError(str(error.detail), error.status_code, code="not_found" if error.status_code == 404 else "http_error")
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.limits.model_name, **served.engines.stats()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served.limits.model_name, "object": "model", "created": 0, "owned_by": "got-lightning"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        page = chat_request(await _json_body(request), served.limits)
        job = await _submit(served, page, request)
        if page.stream:
            return StreamingResponse(_stream(served, job, page), media_type="text/event-stream")
        answer = await _finished(job, request)
        return JSONResponse(_completion(served, job, answer))

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        fields, image = await _predict_fields(request, served.limits)
        page = await run_in_threadpool(predict_request, fields, image, served.limits, served.builder.page_size)
        job = await _submit(served, page, request)
        answer = await _finished(job, request)
        line = prediction_line(
            [image.ref],
            [str(image.files[0])],
            decode(served.tokenizer, answer.ids),
            **answer.reading(),
            seconds=answer.finished_at - job.received,
        )
        return JSONResponse(line)

    return app


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"the request body is not valid JSON: {error}") from error


async def _predict_fields(request: Request, limits: ServeLimits) -> tuple[dict[str, Any], ResolvedImage]:
    """A multipart upload (`file` plus form fields) or JSON (`image`: base64 or a data: URL, or a
    local `path` under --allow_local_files)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestError("multipart requests need a 'file' part holding the image", param="file")
        fields = {key: value for key, value in form.items() if key != "file"}
        return fields, ResolvedImage(
            upload.filename or "upload", (EncodedImage(upload.filename or "upload", await upload.read()),)
        )
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object or a multipart upload")
    fields = dict(body)
    path = fields.pop("path", None)
    image = fields.pop("image", None)
    if path is not None:
        return fields, await run_in_threadpool(local_image, path, limits)
    if not isinstance(image, str) or not image:
        raise RequestError(
            "send the page as 'image' (base64, or a data: URL), as a multipart 'file', or as a local 'path'", param="image"
        )
    if image.startswith("data:"):
        return fields, ResolvedImage("upload", (decode_data_url(image),))
    try:
        data = base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(f"image is not valid base64: {error}", param="image") from error
    return fields, ResolvedImage("upload", (EncodedImage("upload", data),))


async def _submit(served: ServedModel, page: PageRequest, request: Request) -> Job:
    sample = await run_in_threadpool(served.sample, page)
    job = Job(sample, page.max_new_tokens, asyncio.get_running_loop(), stream=page.stream)
    served.engines.submit(job)
    return job


async def _next(job: Job) -> tuple[str, Any]:
    kind, value = await job.updates.get()
    if kind == "error":
        raise value
    return kind, value


async def _finished(job: Job, request: Request) -> Answer:
    """Wait for the answer; a client that disconnects meanwhile cancels the page."""
    watcher = asyncio.create_task(_cancel_when_gone(job, request))
    try:
        while True:
            kind, value = await _next(job)
            if kind == "done":
                return value
    except EngineError as error:
        raise RequestError(str(error), 500, code="model_error") from error
    finally:
        watcher.cancel()
        job.cancel()


async def _cancel_when_gone(job: Job, request: Request) -> None:
    while not job.cancelled:
        if await request.is_disconnected():
            job.cancel()
            return
        await asyncio.sleep(0.1)


def _usage(job: Job, answer: Answer) -> dict[str, int]:
    prompt = last_answer_span(job.sample["labels"])[0]
    return {"prompt_tokens": prompt, "completion_tokens": len(answer.ids), "total_tokens": prompt + len(answer.ids)}


def _completion(served: ServedModel, job: Job, answer: Answer) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served.limits.model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": decode(served.tokenizer, answer.ids)},
                "finish_reason": "length" if answer.truncated else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(job, answer),
    }


async def _stream(served: ServedModel, job: Job, page: PageRequest) -> AsyncIterator[str]:
    """Server-sent events: the answer's text as it grows, OpenAI's chunk shape, then `[DONE]`.
    A client that goes away cancels the page (the generator is closed)."""
    ids: list[int] = []
    sent = ""
    header = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time())}
    header["model"] = served.limits.model_name

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps({**header, 'choices': [choice], **extra}, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            try:
                kind, value = await _next(job)
            except EngineError as error:
                yield f"data: {json.dumps(RequestError(str(error), 500, code='model_error').body())}\n\n"
                return
            ids = value.ids if kind == "done" else ids + value
            text = decode(served.tokenizer, ids)
            # Hold back a character still being spelled out by byte tokens (U+FFFD until complete).
            if text.startswith(sent) and (kind == "done" or not text.endswith("\ufffd")) and len(text) > len(sent):
                yield chunk({"content": text[len(sent) :]})
                sent = text
            if kind == "done":
                yield chunk({}, "length" if value.truncated else "stop")
                if page.include_usage:
                    yield f"data: {json.dumps({**header, 'choices': [], 'usage': _usage(job, value)})}\n\n"
                yield "data: [DONE]\n\n"
                return
    finally:
        job.cancel()
