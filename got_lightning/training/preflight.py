"""Checks that fail in seconds, before any model is trained, naming the problem."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from got_lightning.core.errors import UserError
from got_lightning.data.annotations.formats.tables import is_dataset_id


class PreflightError(UserError, RuntimeError):
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


def check_annotations(datasets: list) -> None:
    """Every annotation file or folder a dataset names exists and can be read (synthetic ones are
    built later; a hub dataset id is looked up in the hub cache when it is indexed)."""
    for spec in datasets:
        for path in (spec.annotations, spec.val_annotations):
            if path is None or (spec.synthetic is not None and path == spec.annotations):
                continue
            _check_readable(spec.name, str(path))


def _check_readable(dataset: str, annotations: str) -> None:
    path = Path(annotations)
    if annotations.startswith("s3://") or (not path.exists() and is_dataset_id(annotations)):
        return  # read when indexed, through the hub's cache or boto3
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                next(entries, None)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
    except OSError as error:
        raise PreflightError(
            f"dataset {dataset!r}: annotations {annotations} cannot be read: {error.strerror or error}"
        ) from error


def checkpoint_bytes(trainable_parameters: int, bytes_per_value: int = 4) -> int:
    """Size of one checkpoint: trainable weights plus AdamW's two moments (frozen weights are not saved)."""
    return 3 * trainable_parameters * bytes_per_value


def check_free_space(folder: str | Path, needed: int) -> None:
    """At least `needed` bytes are free where the run writes."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise PreflightError(
            f"{folder} has {free / 2**30:.2f} GiB free but the checkpoints this run keeps need about "
            f"{needed / 2**30:.2f} GiB; free space, lower checkpoint.save_top_k or write elsewhere"
        )
