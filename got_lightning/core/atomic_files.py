"""Files and folders that are never seen half-written: written under a temporary name beside the
target, flushed to disk (unless a cache of recomputable entries asks not to), then renamed over it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

STAGING_MARK = ".partial-"
REPLACED_MARK = ".replaced-"


def staging_path(path: Path, tag: str | int | None = None) -> Path:
    """Where `path` is written before it is renamed into place: a hidden name beside it that no
    `*.ckpt`-style pattern matches. `tag` defaults to this process's id."""
    return path.with_name(f".{path.name}{STAGING_MARK}{os.getpid() if tag is None else tag}")


def fsync_directory(folder: Path) -> None:
    """Make renames inside `folder` durable (POSIX; a no-op where directories cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], durable: bool = True) -> Path:
    """Call `write` on a temporary file beside `path` and rename it to `path`. `durable` also
    fsyncs the file and the rename, so that they survive a power cut; a cache whose entries can be
    recomputed skips that cost."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(path)
    try:
        with open(staging, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    if durable:
        fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def publish_directory(staging: Path, target: Path) -> None:
    """Rename a complete `staging` folder to `target`, replacing an older `target`. A directory cannot
    be renamed over a non-empty one, so the old one is first moved aside; `recover_directory` finishes
    the job if the process dies between the two renames."""
    replaced = target.with_name(f".{target.name}{REPLACED_MARK}{os.getpid()}")
    if target.exists():
        os.replace(target, replaced)
    os.replace(staging, target)
    fsync_directory(target.parent)
    shutil.rmtree(replaced, ignore_errors=True)


def recover_directory(folder: Path, is_complete: Callable[[Path], bool]) -> list[Path]:
    """Finish or undo directory publications that a killed process left in `folder`: a complete
    staging folder whose target is missing is published, a moved-aside old one whose target is
    missing is put back, and everything else left over is deleted. Returns what was deleted."""
    removed = []
    leftovers = sorted(
        (path for path in folder.glob(".*") if path.is_dir() and (STAGING_MARK in path.name or REPLACED_MARK in path.name)),
        key=lambda path: REPLACED_MARK in path.name,  # newer staging folders first
    )
    for path in leftovers:
        mark = STAGING_MARK if STAGING_MARK in path.name else REPLACED_MARK
        target = folder / path.name[1:].split(mark)[0]
        if not target.exists() and is_complete(path):
            os.replace(path, target)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    fsync_directory(folder)
    return removed
