"""The reading loop behind the server: one model on one device, a thread that decodes every page it
holds as one batch. Requests that arrive together are prefilled together; with continuous batching a
request that arrives while others are decoding joins them at the next step, and a finished (or
abandoned) page leaves at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from got_lightning.data.collate import Collator
from got_lightning.generation.batch import Answer, DecodeBatch
from got_lightning.generation.prompts import split_prompts
from got_lightning.model.output_head import generation_head
from got_lightning.module import GotLightningModule

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The model failed on a batch (its traceback is logged); the requests in it get a 500."""


@dataclass(eq=False)  # compared and hashed by identity: each is one request
class Job:
    """One page handed to an engine; updates go back to the request's event loop."""

    sample: dict[str, Any]
    max_new_tokens: int
    loop: asyncio.AbstractEventLoop
    stream: bool = False
    received: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    updates: asyncio.Queue = field(default_factory=asyncio.Queue)
    _sent: int = 0

    def cancel(self) -> None:
        """The client went away: the engine drops the page before its next step."""
        self.cancelled = True

    def publish(self, answer: Answer) -> None:
        """Called by the engine: new tokens (streaming), or the finished answer."""
        if answer.finished:
            self._put(("done", answer))
        elif self.stream and len(answer.ids) > self._sent:
            self._put(("tokens", answer.ids[self._sent :]))
            self._sent = len(answer.ids)

    def fail(self, error: Exception) -> None:
        self._put(("error", error))

    def _put(self, item: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the request's loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(self.updates.put_nowait, item)


class Engine:
    """Reads pages on one device.

    Args:
        module: The model, on `device`, in eval mode.
        device: Where its batches run.
        max_batch_size: Pages decoded together at most.
        batch_timeout: Seconds an idle engine waits, after a first request, for others to share its batch.
        continuous: New requests join a running batch between steps (otherwise a batch runs to its end).
        autocast: A dtype to run the model under `torch.autocast` (mixed precision), or None.
    """

    def __init__(
        self,
        module: GotLightningModule,
        device: torch.device,
        max_batch_size: int = 8,
        batch_timeout: float = 0.01,
        continuous: bool = True,
        autocast: torch.dtype | None = None,
        name: str = "engine",
    ) -> None:
        self.module, self.device = module, device
        self.max_batch_size, self.batch_timeout, self.continuous = max_batch_size, batch_timeout, continuous
        self.autocast = autocast
        self.batch = DecodeBatch(module.got, module.generation.no_repeat_ngram_size)
        self._pending: queue.Queue[Job] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._collate = Collator()
        self.pages_read = 0
        self.largest_batch = 0

    @property
    def load(self) -> int:
        """Pages waiting or being read."""
        return self._pending.qsize() + len(self.batch)

    @property
    def running(self) -> int:
        return len(self.batch)

    @property
    def waiting(self) -> int:
        return self._pending.qsize()

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._pending.put(job)

    def stop(self, timeout: float | None = None) -> None:
        """Finish the pages already given, then stop."""
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        with torch.inference_mode(), self._precision():
            if self.batch.head is self.module.got.lm_head:  # the weights never change while serving
                self.batch.head = generation_head(self.module.got.lm_head, self.max_batch_size)
            while True:
                jobs = self._admit()
                if jobs is None:
                    return
                if jobs:
                    self._prefill(jobs)
                if len(self.batch):
                    self._step()

    def _precision(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _admit(self) -> list[Job] | None:
        """The jobs to add before the next step; None once stopping with nothing left to read."""
        room = self.max_batch_size - len(self.batch)
        if len(self.batch):
            return self._take(room, deadline=None) if self.continuous else []
        first = None
        while first is None:
            if self._stopping.is_set() and self._pending.empty():
                return None
            try:
                first = self._pending.get(timeout=0.05)
            except queue.Empty:
                continue
            if first.cancelled:
                first = None
        return [first, *self._take(room - 1, deadline=time.perf_counter() + self.batch_timeout)]

    def _take(self, room: int, deadline: float | None) -> list[Job]:
        """Up to `room` waiting jobs; until `deadline` for ones still to come (None: those here now)."""
        jobs: list[Job] = []
        while len(jobs) < room:
            wait = None if deadline is None else deadline - time.perf_counter()
            try:
                job = self._pending.get_nowait() if wait is None or wait <= 0 else self._pending.get(timeout=wait)
            except queue.Empty:
                break
            if not job.cancelled:
                jobs.append(job)
        return jobs

    def _prefill(self, jobs: list[Job]) -> None:
        try:
            batch = self._collate([job.sample for job in jobs])
            prompts, _ = split_prompts(batch["input_ids"], batch["labels"])
            features = self.module.image_features(batch["pixel_values"].to(self.device))
            self.batch.add(prompts, features, [job.max_new_tokens for job in jobs], jobs)
        except Exception as error:  # a failing batch must not stop the server: its pages get a 500
            log.exception("reading a batch of %d page(s) failed", len(jobs))
            for job in jobs:
                job.fail(EngineError(f"the model failed on this batch: {error}"))

    def _step(self) -> None:
        self.largest_batch = max(self.largest_batch, len(self.batch))
        try:
            for job, answer in self.batch.choose():
                self.pages_read += answer.finished  # counted before the client can hear of it and ask
                job.publish(answer)
            self.batch.remove({job for job in self.batch.tags if job.cancelled})
            if len(self.batch):
                self.batch.advance()
        except Exception as error:  # as above; the batch starts afresh
            log.exception("a decoding step of %d page(s) failed", len(self.batch))
            for job in self.batch.tags:
                job.fail(EngineError(f"the model failed on this batch: {error}"))
            self.batch = DecodeBatch(self.module.got, self.module.generation.no_repeat_ngram_size, self.batch.head)


class EnginePool:
    """One engine per device; a page goes to the least loaded."""

    def __init__(self, engines: list[Engine]) -> None:
        self.engines = engines

    def start(self) -> None:
        for engine in self.engines:
            engine.start()

    def submit(self, job: Job) -> None:
        min(self.engines, key=lambda engine: engine.load).submit(job)

    def stop(self) -> None:
        for engine in self.engines:
            engine.stop()

    def stats(self) -> dict[str, int]:
        return {
            "running": sum(engine.running for engine in self.engines),
            "waiting": sum(engine.waiting for engine in self.engines),
            "pages_read": sum(engine.pages_read for engine in self.engines),
            "largest_batch": max(engine.largest_batch for engine in self.engines),
            "engines": len(self.engines),
        }
