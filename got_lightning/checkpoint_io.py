"""Checkpoints written crash-safely and read in either form: a Lightning file, or a DeepSpeed
directory (one shard per rank) that is complete once it carries `COMPLETE_MARK`.

(Lightning's own local save stages the bytes in the system temp folder and moves them; across
file systems that move is a copy, and a kill during it leaves a truncated checkpoint.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from got_lightning.optional import require
from got_lightning.atomic_files import STAGING_MARK, atomic_write, atomic_write_text, recover_directory

COMPLETE_MARK = "checkpoint_complete.json"


def is_complete_checkpoint(path: Path) -> bool:
    """A checkpoint file is whole once it has its name (files are renamed into place when
    complete); a DeepSpeed directory once every rank has written its shard and rank 0 the mark."""
    if path.is_file():
        return True
    return (path / COMPLETE_MARK).is_file()


def mark_complete(folder: Path, details: dict[str, Any]) -> None:
    """Written by rank 0 after every rank's shard of a DeepSpeed checkpoint is on disk."""
    atomic_write_text(folder / COMPLETE_MARK, json.dumps(details) + "\n")


def saved_at(path: Path) -> float:
    """When a complete checkpoint was finished (a directory: when its mark was written)."""
    return (path if path.is_file() else path / COMPLETE_MARK).stat().st_mtime


def atomic_torch_save(checkpoint: dict[str, Any], path: str | Path) -> None:
    atomic_write(path, lambda handle: torch.save(checkpoint, handle))


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` for local paths whose saves are write-to-temporary-then-rename, and
    which also loads a DeepSpeed checkpoint directory (consolidated), e.g. to validate on one GPU
    what was trained with ZeRO."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        if Path(path).is_dir():
            return read_checkpoint(path)
        return super().load_checkpoint(path, map_location, weights_only)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning `.ckpt` file, or a DeepSpeed checkpoint directory consolidated to fp32, loaded
    without executing pickled code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        require("deepspeed", f"reading the DeepSpeed checkpoint {path}")
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

        with tempfile.TemporaryDirectory() as scratch:
            single = Path(scratch) / "consolidated.ckpt"
            convert_zero_checkpoint_to_fp32_state_dict(str(path), str(single))
            return torch.load(single, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def remove_stale_staging(folder: str | Path) -> list[Path]:
    """Clean up after a killed run: delete half-written checkpoint files and directories, finish a
    DeepSpeed directory's publication that was cut between its two renames; return what was deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [path for path in folder.glob(f".*{STAGING_MARK}*") if path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed + recover_directory(folder, is_complete_checkpoint)
