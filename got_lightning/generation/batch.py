"""A decoding batch that rows join and leave between steps: each row's KV cache, attention mask and
position live in one batch; a finished row leaves (its cache too), and new rows prefilled on their
own are left-padded to the batch's length and joined (continuous batching)."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import GotOcr2ForConditionalGeneration

from got_lightning.generation.ngrams import NgramBlocker
from got_lightning.generation.prompts import left_pad
from got_lightning.model.forward import read_prompts
from got_lightning.model.output_head import OutputHead
from got_lightning.tokens import IM_END_ID, PAD_ID


@dataclass
class Answer:
    """One row's answer as it grows: its tokens (the stop token not counted), whether it stopped on
    `<|im_end|>` or at its token limit, and the probability the model gave each chosen token."""

    ids: list[int] = field(default_factory=list)
    stopped: bool = False
    finished: bool = False
    finished_at: float | None = None
    _probability_sum: float = 0.0
    _min_probability: float = 1.0
    _choices: int = 0

    @property
    def truncated(self) -> bool:
        """Generation ended at the token limit, not on the model's own stop token."""
        return self.finished and not self.stopped

    @property
    def confidence(self) -> dict[str, float | None]:
        """Mean and minimum probability of the chosen tokens (the stop token included)."""
        if not self._choices:
            return {"mean": None, "min": None}
        return {"mean": self._probability_sum / self._choices, "min": self._min_probability}

    def reading(self) -> dict[str, Any]:
        """How the answer was generated, as result lines record it."""
        return {"new_tokens": len(self.ids), "truncated": self.truncated, "confidence": self.confidence}

    def _choose(self, token: int, probability: float, limit: int) -> bool:
        """Record one chosen token; returns whether the answer is finished."""
        self._choices += 1
        self._probability_sum += probability
        self._min_probability = min(self._min_probability, probability)
        if token == IM_END_ID:
            self.stopped = True
        else:
            self.ids.append(token)
        self.finished = self.stopped or len(self.ids) >= limit
        if self.finished:
            self.finished_at = time.perf_counter()
        return self.finished


@dataclass
class _Row:
    tag: Any
    answer: Answer
    limit: int


def _forward_kwarg(model: GotOcr2ForConditionalGeneration) -> str:
    """The KV-cache argument of the model's forward: `cache` (transformers >= 5.x, where
    `past_key_values` is deprecated) or `past_key_values` before it."""
    return "cache" if "cache" in inspect.signature(model.model.forward).parameters else "past_key_values"


def _output_cache(output: Any) -> Any:
    return output.cache if getattr(output, "cache", None) is not None else output.past_key_values


class DecodeBatch:
    """Greedy decoding of the rows it holds, one token per row and step.

    `add` prefills new rows; `choose` picks every row's next token (the n-gram rule applied, the
    chosen token's probability kept) and drops rows that finished; `advance` runs the model on the
    chosen tokens. The same tokens as decoding each row alone (tested against transformers'
    `generate`), whatever the rows it shares the batch with and whenever it joined.
    """

    def __init__(
        self, model: GotOcr2ForConditionalGeneration, no_repeat_ngram_size: int = 0, output_head: OutputHead | None = None
    ) -> None:
        self.model = model
        self.head = output_head or model.lm_head
        self.rows: list[_Row] = []
        self.blocker = NgramBlocker(no_repeat_ngram_size, []) if no_repeat_ngram_size else None
        self._cache_kwarg = _forward_kwarg(model)
        self._mask: torch.Tensor | None = None
        self._next_positions: torch.Tensor | None = None
        self._cache: Any = None
        self._hidden: torch.Tensor | None = None
        self._tokens: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def tags(self) -> list[Any]:
        return [row.tag for row in self.rows]

    def add(self, prompts: list[list[int]], image_features: torch.Tensor, limits: list[int], tags: list[Any]) -> list[Answer]:
        """Prefill new rows (their tiles' projected features stacked in order) and join them to the
        batch; each stops after `limits[row]` answer tokens. Call between `advance` and `choose`."""
        if self.rows and self._hidden is None:
            raise RuntimeError("DecodeBatch.add between choose and advance: advance first")
        ids, mask = (tensor.to(image_features.device) for tensor in left_pad(prompts))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = read_prompts(self.model, ids, mask, image_features, position_ids=positions, use_cache=True)
        hidden, cache = output.last_hidden_state[:, -1], _output_cache(output)
        if self.rows:
            self._join(mask, positions[:, -1:] + 1, cache, hidden)
        else:
            self._mask, self._next_positions, self._cache, self._hidden = mask, positions[:, -1:] + 1, cache, hidden
        if self.blocker:
            self.blocker.extend(prompts)
        answers = [Answer() for _ in prompts]
        self.rows += [_Row(tag, answer, limit) for tag, answer, limit in zip(tags, answers, limits)]
        return answers

    def choose(self) -> list[tuple[Any, Answer]]:
        """Every row's next token; returns the `(tag, answer)` of each row it advanced (finished
        ones, which leave the batch, included)."""
        if not self.rows:
            return []
        scores = self.head(self._hidden).float()
        self._hidden = None
        log_total = torch.logsumexp(scores, dim=-1)
        if self.blocker:
            self.blocker.ban(scores)
        best = scores.max(dim=-1)
        probabilities = (best.values - log_total).exp().tolist()
        running = [
            position
            for position, (row, token, probability) in enumerate(zip(self.rows, best.indices.tolist(), probabilities))
            if not row.answer._choose(token, probability, row.limit)
        ]
        advanced = [(row.tag, row.answer) for row in self.rows]
        self._tokens = best.indices
        self._keep(running)
        if self.blocker and self.rows:
            self.blocker.add(self._tokens.tolist())
        return advanced

    def advance(self) -> None:
        """Run the model on the chosen tokens. With no row left, one forward of a pad token all the
        same: a process whose weights are sharded (ZeRO-3, FSDP) must take part in every forward."""
        if not self.rows:
            device = self.model.lm_head.weight.device
            self.model.model(input_ids=torch.full((1, 1), PAD_ID, device=device), use_cache=False)
            return
        self._mask = torch.cat([self._mask, self._mask.new_ones(len(self.rows), 1)], dim=1)
        tokens, self._tokens = self._tokens, None
        output = self.model.model(
            input_ids=tokens[:, None],
            attention_mask=self._mask,
            position_ids=self._next_positions,
            use_cache=True,
            **{self._cache_kwarg: self._cache},
        )
        self._next_positions = self._next_positions + 1
        self._hidden = output.last_hidden_state[:, -1]

    def remove(self, tags: set[Any]) -> None:
        """Drop these rows (a client that went away)."""
        self._keep([position for position, row in enumerate(self.rows) if row.tag not in tags])

    def _keep(self, positions: list[int]) -> None:
        """Keep these rows only (KV cache, mask, positions, pending hidden states or tokens, n-gram
        index), then cut the left padding no row needs any more."""
        if len(positions) == len(self.rows):
            return
        self.rows = [self.rows[position] for position in positions]
        if self.blocker:
            self.blocker.keep(positions)
        if not self.rows:
            self._mask = self._next_positions = self._cache = self._hidden = self._tokens = None
            return
        keep = torch.tensor(positions, device=self._mask.device)
        self._cache.batch_select_indices(keep)
        self._mask, self._next_positions = self._mask[keep], self._next_positions[keep]
        if self._hidden is not None:
            self._hidden = self._hidden[keep]
        if self._tokens is not None:
            self._tokens = self._tokens[keep]
        unused = int(self._mask.any(dim=0).int().argmax())
        if unused:
            self._mask = self._mask[:, unused:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]

    def _join(self, mask: torch.Tensor, next_positions: torch.Tensor, cache: Any, hidden: torch.Tensor) -> None:
        """Append prefilled rows: the shorter side is left-padded (masked-out zeros in its cache)."""
        width = max(self._mask.shape[1], mask.shape[1])
        self._mask = torch.cat([_pad_left(self._mask, width), _pad_left(mask, width)])
        for ours, theirs in zip(self._cache.layers, cache.layers):
            ours.keys = torch.cat([_pad_left(ours.keys, width, dim=-2), _pad_left(theirs.keys, width, dim=-2)])
            ours.values = torch.cat([_pad_left(ours.values, width, dim=-2), _pad_left(theirs.values, width, dim=-2)])
        self._next_positions = torch.cat([self._next_positions, next_positions])
        self._hidden = torch.cat([self._hidden, hidden])


def _pad_left(tensor: torch.Tensor, width: int, dim: int = -1) -> torch.Tensor:
    """Zeros before `tensor` along `dim` up to `width`."""
    missing = width - tensor.shape[dim]
    if not missing:
        return tensor
    dim = dim % tensor.dim()
    padding = [0, 0] * (tensor.dim() - 1 - dim) + [missing, 0]
    return F.pad(tensor, padding)
