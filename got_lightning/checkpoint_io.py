"""Checkpoint files written crash-safely: a temporary file beside the target, flushed to disk, then
renamed over it, so a checkpoint's name only ever points at a complete file.

(Lightning's own local save stages the bytes in the system temp folder and moves them; across
file systems that move is a copy, and a kill during it leaves a truncated checkpoint.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

STAGING_MARK = ".partial-"


def staging_path(path: Path) -> Path:
    """Where a checkpoint is written before it is renamed into place (never matches `*.ckpt`)."""
    return path.with_name(f".{path.name}{STAGING_MARK}{os.getpid()}")


def atomic_torch_save(checkpoint: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(path)
    try:
        with open(staging, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` for local paths whose saves are write-to-temporary-then-rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)


def remove_stale_staging(folder: str | Path) -> list[Path]:
    """Delete half-written checkpoints a killed run left behind; return them."""
    removed = [path for path in Path(folder).glob(f".*{STAGING_MARK}*") if path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
