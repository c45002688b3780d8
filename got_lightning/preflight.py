"""Checks that fail in seconds, before any model is trained, naming the problem."""

from __future__ import annotations

import tempfile
from pathlib import Path


class PreflightError(RuntimeError):
    """Something the run needs is missing or unusable."""


def check_writable(folder: str | Path) -> None:
    """The run directory can be created and written to."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise PreflightError(f"run directory {folder} is not writable: {error.strerror or error}") from error
