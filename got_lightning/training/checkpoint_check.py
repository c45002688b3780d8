"""Cheap checks that a checkpoint is whole, before anything loads it.

A `.ckpt` file is a zip archive (torch.save's format) whose central directory sits at its very end:
a file cut short (a copy interrupted, a disk fault, a zero-byte file) has none, or one whose
entries point past the end of the file. Reading that directory costs a few kilobytes whatever the
checkpoint's size. A DeepSpeed directory is whole when its completion mark is there and every
shard file is present and readable as such.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from got_lightning.core.errors import InputFileError

COMPLETE_MARK = "checkpoint_complete.json"


class BrokenCheckpointError(InputFileError):
    """A checkpoint file or directory that cannot be whole: named with the reason."""


def verify_checkpoint(path: str | Path) -> None:
    """Raise `BrokenCheckpointError` naming `path` and the reason if it cannot be a whole checkpoint."""
    path = Path(path)
    if path.is_dir():
        _verify_directory(path)
        return
    reason = _zip_problem(path)
    if reason:
        raise BrokenCheckpointError(f"checkpoint {path} is broken: {reason}")


def checkpoint_step(path: str | Path) -> int | None:
    """The optimizer step a whole checkpoint was saved at (None when it does not say)."""
    path = Path(path)
    if path.is_dir():
        try:
            return json.loads((path / COMPLETE_MARK).read_text(encoding="utf-8")).get("global_step")
        except (OSError, ValueError):
            return None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # the step is only shown: the checkpoint is loaded (and errors reported) later
        return None
    return state.get("global_step") if isinstance(state, dict) else None


def _zip_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile:
        return f"not a complete checkpoint archive ({size} bytes, no zip directory at its end: cut short?)"
    if not entries:
        return "the archive holds no tensors"
    last = max(entries, key=lambda entry: entry.header_offset)
    if last.header_offset + last.compress_size > size:
        return f"its last entry ends past the end of the file ({size} bytes): cut short"
    if not any(entry.filename.endswith("data.pkl") for entry in entries):
        return "the archive has no data.pkl: not written by torch.save"
    return None


def _verify_directory(path: Path) -> None:
    mark = path / COMPLETE_MARK
    if not mark.is_file():
        raise BrokenCheckpointError(f"checkpoint {path} is broken: no {COMPLETE_MARK} (its save did not finish)")
    try:
        details = json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BrokenCheckpointError(f"checkpoint {path} is broken: unreadable {COMPLETE_MARK}: {error}") from error
    shards = sorted(path.rglob("*.pt"))
    optimizer_shards = [shard for shard in shards if shard.name.endswith("optim_states.pt")]
    ranks = details.get("world_size") if isinstance(details, dict) else None
    if not shards or (isinstance(ranks, int) and len(optimizer_shards) < ranks):
        raise BrokenCheckpointError(
            f"checkpoint {path} is broken: {len(optimizer_shards)} optimizer shard(s) for the {ranks} rank(s) that saved it"
        )
    for shard in shards:
        reason = _zip_problem(shard)
        if reason:
            raise BrokenCheckpointError(f"checkpoint {path} is broken: shard {shard.relative_to(path)}: {reason}")
