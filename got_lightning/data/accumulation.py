"""Gradient-accumulation windows: each micro-batch learns how many supervised tokens its window has,
so the loss can be the mean over every supervised token of the effective batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from torchdata.stateful_dataloader import StatefulDataLoader

from got_lightning.data.collate import Batch
from got_lightning.tokens import IGNORE_INDEX


def supervised_tokens(batch: Batch) -> int:
    """Label positions that are trained on (the first position never is: nothing predicts it)."""
    if not batch["size"]:
        return 0
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


class MissingWindowError(KeyError):
    """A training batch that did not come through a `WindowLoader`."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class WindowPosition:
    """Where a training micro-batch sits in its accumulation window."""

    index: int
    size: int
    tokens: int

    @classmethod
    def of(cls, batch: Batch) -> WindowPosition:
        """The window fields `WindowLoader` put on a batch; raises when they are missing, because
        the loss normalisation and the optimizer-step boundary both depend on them."""
        try:
            return cls(batch["window_index"], batch["window_size"], batch["window_tokens"])
        except KeyError as error:
            raise MissingWindowError(
                f"training batch has no {error.args[0]!r}: train batches must come from a WindowLoader "
                "(GotDataModule.train_dataloader), which tags each micro-batch with its accumulation window"
            ) from None

    @property
    def starts(self) -> bool:
        return self.index == 0

    @property
    def ends(self) -> bool:
        return self.index == self.size - 1


class WindowLoader:
    """Reads the wrapped loader one accumulation window ahead and tags every micro-batch with
    `window_tokens` (the window's supervised tokens on this rank), `window_size` and `window_index`.

    Resumable: its state is the wrapped loader's state at the start of the current window plus how
    many of that window's micro-batches were already handed out. A state saved after the epoch's
    last micro-batch resumes into a fresh epoch.
    """

    def __init__(self, loader: StatefulDataLoader, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.loader = loader
        self.window = window
        self._window_start: dict | None = None
        self._read_before_window = 0
        self._handed_out = 0
        self._window_length = 0
        self._skip = 0
        self._resume_read = 0

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def sampler(self) -> Any:
        """The epoch-aware batch sampler: Lightning calls `set_epoch` on a loader's `sampler` at
        every epoch start (and on resume, before the loader is iterated)."""
        return self.loader.batch_sampler

    def __iter__(self) -> Iterator[dict[str, Any]]:
        iterator = iter(self.loader)
        skip, self._skip = self._skip, 0
        read, self._resume_read = self._resume_read, 0
        while True:
            start = self.loader.state_dict()
            batches = list(islice(iterator, self.window))
            if not batches:
                return
            self._window_start, self._window_length, self._read_before_window = start, len(batches), read
            read += len(batches)
            tokens = sum(supervised_tokens(batch) for batch in batches)
            for number, batch in enumerate(batches):
                self._handed_out = number + 1
                if number < skip:
                    continue
                batch.update(window_tokens=tokens, window_size=len(batches), window_index=number)
                yield batch
            skip = 0

    def state_dict(self) -> dict[str, Any]:
        if self._window_start is None:
            return {"loader": self.loader.state_dict(), "skip": 0, "read": 0}
        read = self._read_before_window + self._window_length
        if self._handed_out < self._window_length:
            return {"loader": self._window_start, "skip": self._handed_out, "read": self._read_before_window}
        return {"loader": self.loader.state_dict(), "skip": 0, "read": read, "finished": read >= len(self.loader)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._window_start, self._handed_out, self._window_length = None, 0, 0
        if state.get("finished"):
            # Lightning resumes a checkpoint saved after an epoch's last batch by running that epoch
            # again: the loader must then give the next epoch, not nothing.
            self._skip = self._resume_read = 0
            return
        self.loader.load_state_dict(state["loader"])
        self._skip = state["skip"]
        self._resume_read = state.get("read", 0)
