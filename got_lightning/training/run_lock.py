"""One writer per run directory: `fit` holds an exclusive lock on `<run>/run.lock` for as long as it
runs. The kernel drops the lock when the process dies however it dies, so a lock file left by a
dead run is taken over (with a notice naming it); a live holder makes a second `fit` stop with one
line naming it. The file records who holds it: host, pid and start time, cleared on a clean exit.
Only the holder cleans up half-written checkpoints: a reader could delete a live save's staging file."""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import weakref
from pathlib import Path
from typing import IO

from got_lightning.core.errors import UserError
from got_lightning.core.run_dir import RunDir


class RunDirectoryLocked(UserError, RuntimeError):
    """Another live process writes into this run directory."""


_HELD: weakref.WeakSet[RunLock] = weakref.WeakSet()


def _forget_in_child() -> None:
    """A forked child (a DataLoader worker) closes its copy of every held lock's file: flock belongs
    to the open file, so a worker that outlives a killed run would otherwise keep its lock. Closing
    a copy never unlocks the parent's."""
    for lock in list(_HELD):
        if lock._handle is not None:
            lock._handle.close()
            lock._handle = None


os.register_at_fork(after_in_child=_forget_in_child)


class RunLock:
    """The run directory's lock, held until `release` or the end of the process (never by a forked child)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = RunDir(run_dir).lock
        self._handle: IO[str] | None = None
        self.previous: dict | None = None
        """What a dead holder wrote in the lock file, when this process took it over."""

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise RunDirectoryLocked(
                f"run directory {self.path.parent} is in use by {describe_holder(holder)} ({self.path}); "
                "wait for it to finish, stop it, or set trainer.default_root_dir to another folder"
            ) from None
        self.previous = _holder(handle)
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": started}) + "\n")
        handle.flush()
        self._handle = handle
        _HELD.add(self)
        return self

    def release(self) -> None:
        """Clear the holder and drop the lock (a holder left in the file means a run that died)."""
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.close()
            self._handle = None

    def takeover_notice(self) -> str | None:
        """One line when the lock was taken over from a run that died holding it."""
        if not self.previous:
            return None
        return f"took over {self.path} from {describe_holder(self.previous)}, which is no longer running"


def is_locked(run_dir: str | Path) -> bool:
    """Whether a live process holds the run directory's lock (readers leave its files alone then)."""
    path = RunDir(run_dir).lock
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')})"


def _holder(handle: IO[str]) -> dict | None:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "null")
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None
