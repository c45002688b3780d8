"""Held-out records scored on every rank, gathered in dataset order."""

from __future__ import annotations

from typing import Any

import torch


def _gather(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rank's items, on every rank."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list[list[dict[str, Any]] | None] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, items)
        items = [item for part in parts for item in part or []]
    return items


def gather_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rank's scored records (on every rank), in dataset order."""
    return sorted(_gather(records), key=lambda record: (record["dataset"], record["position"]))


def gather_problems(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rank's skipped held-out records (on every rank), in dataset order."""
    return sorted(_gather(problems), key=lambda problem: (problem["dataset"], problem["index"]))
