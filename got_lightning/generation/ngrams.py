"""transformers' `no_repeat_ngram_size` rule, indexed once per row instead of scanned every step."""

from __future__ import annotations

from collections import defaultdict

import torch


class NgramBlocker:
    """A token that would complete an n-gram already in the row (prompt included) is banned. Each
    row's n-grams are indexed by their first n-1 tokens and extended by one per step."""

    def __init__(self, ngram_size: int, prompts: list[list[int]]) -> None:
        self.context = ngram_size - 1
        self._rows: list[list[int]] = []
        self._next_tokens: list[defaultdict[tuple[int, ...], set[int]]] = []
        self.extend(prompts)

    def extend(self, prompts: list[list[int]]) -> None:
        """New rows after the existing ones, each starting from its prompt."""
        for prompt in prompts:
            self._rows.append([])
            self._next_tokens.append(defaultdict(set))
            for token in prompt:
                self._append(len(self._rows) - 1, token)

    def add(self, tokens: list[int]) -> None:
        """One new token per row."""
        for row, token in enumerate(tokens):
            self._append(row, token)

    def keep(self, rows: list[int]) -> None:
        """Forget every row but these, which become rows 0, 1, ..."""
        self._rows = [self._rows[row] for row in rows]
        self._next_tokens = [self._next_tokens[row] for row in rows]

    def ban(self, scores: torch.Tensor) -> None:
        """Set the scores `(rows, vocab)` of banned next tokens to -inf, in place."""
        for position, (row, index) in enumerate(zip(self._rows, self._next_tokens)):
            if len(row) < self.context:
                continue
            banned = index.get(tuple(row[len(row) - self.context :]))
            if banned:
                scores[position, list(banned)] = -float("inf")

    def _append(self, row: int, token: int) -> None:
        tokens = self._rows[row]
        if len(tokens) >= self.context:
            self._next_tokens[row][tuple(tokens[len(tokens) - self.context :])].add(token)
        tokens.append(token)
