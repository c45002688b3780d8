"""Gradient-accumulation windows: each micro-batch learns how many supervised tokens its window has,
so the loss can be the mean over every supervised token of the effective batch."""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterator

from torchdata.stateful_dataloader import StatefulDataLoader

from got_lightning.tokens import IGNORE_INDEX


def supervised_tokens(batch: dict[str, Any]) -> int:
    """Label positions that are trained on (the first position never is: nothing predicts it)."""
    if not batch["size"]:
        return 0
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


class WindowLoader:
    """Reads the wrapped loader one accumulation window ahead and tags every micro-batch with
    `window_tokens` (the window's supervised tokens on this rank), `window_size` and `window_index`.

    Resumable: its state is the wrapped loader's state at the start of the current window plus how
    many of that window's micro-batches were already handed out.
    """

    def __init__(self, loader: StatefulDataLoader, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.loader = loader
        self.window = window
        self._window_start: dict | None = None
        self._handed_out = 0
        self._window_length = 0
        self._skip = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        iterator = iter(self.loader)
        skip, self._skip = self._skip, 0
        while True:
            start = self.loader.state_dict()
            batches = list(islice(iterator, self.window))
            if not batches:
                return
            self._window_start, self._window_length = start, len(batches)
            tokens = sum(supervised_tokens(batch) for batch in batches)
            for number, batch in enumerate(batches):
                self._handed_out = number + 1
                if number < skip:
                    continue
                batch.update(window_tokens=tokens, window_size=len(batches), window_index=number)
                yield batch
            skip = 0

    def state_dict(self) -> dict[str, Any]:
        if self._window_start is None or self._handed_out == self._window_length:
            return {"loader": self.loader.state_dict(), "skip": 0}
        return {"loader": self._window_start, "skip": self._handed_out}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state["loader"])
        self._skip = state["skip"]
        self._window_start, self._handed_out, self._window_length = None, 0, 0
