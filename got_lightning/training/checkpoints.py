"""Run checkpoints: written crash-safely (a Lightning file renamed into place, a DeepSpeed directory
complete once it carries `COMPLETE_MARK`), kept in a fixed folder under the run directory with a last
checkpoint always left behind, and `--ckpt_path last|best` resolved to a complete one for every
subcommand.

(Lightning's own local save stages the bytes in the system temp folder and moves them; across
file systems that move is a copy, and a kill during it leaves a truncated checkpoint.)
"""

from __future__ import annotations

import errno
import json
import math
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from got_lightning.core.atomic_files import STAGING_MARK, atomic_write, atomic_write_text, recover_directory
from got_lightning.core.errors import InputFileError, InputNotFoundError, UserError
from got_lightning.core.optional import require
from got_lightning.core.run_dir import RunDir
from got_lightning.training.checkpoint_check import COMPLETE_MARK, BrokenCheckpointError, verify_checkpoint
from got_lightning.training.epoch_resume import at_window_boundary


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
        try:
            atomic_torch_save(checkpoint, path)
        except (OSError, RuntimeError) as error:
            full = _disk_full(error)
            if full is None:
                raise
            raise CheckpointWriteError(_explain_disk_full(Path(path), full, _tensor_bytes(checkpoint))) from error

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        if Path(path).is_dir():
            return read_checkpoint(path)
        with refusing_pickled_code(path):  # our checkpoints hold plain values: never run a pickle's code
            return super().load_checkpoint(path, map_location, weights_only=True)


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written for lack of space (or over a file-size limit)."""


def _disk_full(error: BaseException | None) -> OSError | None:
    """The ENOSPC/EFBIG `OSError` behind a failed save (torch wraps it in a RuntimeError)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _explain_disk_full(path: Path, error: OSError, needed: int) -> str:
    free = shutil.disk_usage(path.parent).free
    whole = []
    for candidate in sorted(path.parent.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            verify_checkpoint(candidate)
        except BrokenCheckpointError:
            continue
        whole.append(candidate)
        break
    resume = (
        f"the last good checkpoint is {whole[0]}: free space, then resume with --ckpt_path last"
        if whole
        else "no earlier checkpoint"
    )
    return (
        f"cannot write checkpoint {path}: {error.strerror or error} ({free / 2**20:.0f} MiB free there, "
        f"the checkpoint needs about {needed / 2**20:.0f} MiB); {resume}"
    )


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning `.ckpt` file, or a DeepSpeed checkpoint directory consolidated to fp32, loaded
    without executing pickled code."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"checkpoint {path} does not exist")
    verify_checkpoint(path)
    if path.is_dir():
        require("deepspeed", f"reading the DeepSpeed checkpoint {path}")
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

        with tempfile.TemporaryDirectory() as scratch:
            single = Path(scratch) / "consolidated.ckpt"
            convert_zero_checkpoint_to_fp32_state_dict(str(path), str(single))
            return torch.load(single, map_location="cpu", weights_only=True)
    with refusing_pickled_code(path):
        return torch.load(path, map_location="cpu", weights_only=True)


class UnsafeCheckpointError(InputFileError):
    """A checkpoint whose pickle would run code: refused unread."""


@contextmanager
def refusing_pickled_code(path: str | Path) -> Iterator[None]:
    """torch's `weights_only` refusal of a checkpoint that pickles more than tensors, as one line."""
    try:
        yield
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0]
        raise UnsafeCheckpointError(
            f"checkpoint {path} holds pickled objects beyond tensors and plain values, so it was not loaded "
            f"(nothing in it ran): {first}. Only checkpoints written by got-lightning are read"
        ) from error


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


LAST_NAME = "last.ckpt"
BEST_PREFIX = "best-"
NAMED_CHECKPOINTS = ("last", "best")
_CER_IN_NAME = re.compile(r"cer=([0-9]+(?:\.[0-9]+)?)")


class NoCheckpointError(InputNotFoundError):
    """`--ckpt_path last|best` with no such checkpoint in the run directory."""


def complete_checkpoints(default_root_dir: str | Path) -> list[Path]:
    """Every complete checkpoint of a run: files or DeepSpeed directories named `*.ckpt` in its
    checkpoint folder, and SLURM requeue checkpoints (`hpc_ckpt_N.ckpt`) in the run directory."""
    run = RunDir(default_root_dir)
    found = [*run.checkpoints.glob("*.ckpt"), *run.requeue_checkpoints()]
    return [path for path in found if is_complete_checkpoint(path)]


def find_last_checkpoint(default_root_dir: str | Path) -> Path | None:
    """The run's newest whole checkpoint (`last.ckpt` unless a SLURM requeue checkpoint is newer);
    a broken newest one is passed over for the newest whole one, with a line naming both. None
    when there is none."""
    candidates = complete_checkpoints(default_root_dir)
    last = RunDir(default_root_dir).checkpoints / LAST_NAME
    preferred = [path for path in candidates if path == last or path.name.startswith("hpc_ckpt_")] if last in candidates else []
    ordered = sorted(preferred, key=saved_at, reverse=True) + sorted(
        (path for path in candidates if path not in preferred), key=saved_at, reverse=True
    )
    broken: list[BrokenCheckpointError] = []
    for path in ordered:
        try:
            verify_checkpoint(path)
        except BrokenCheckpointError as error:
            broken.append(error)
            continue
        for error in broken:
            print(f"{error}; using {path} instead", file=sys.stderr)
        return path
    if broken:
        raise NoCheckpointError(
            f"no whole checkpoint under {RunDir(default_root_dir).checkpoints}: {'; '.join(map(str, broken))}"
        )
    return None


def find_best_checkpoint(default_root_dir: str | Path) -> Path | None:
    """The complete `best-*` checkpoint with the lowest held-out CER in its name (the newest among
    equals); None when there is none."""
    scored = []
    for path in complete_checkpoints(default_root_dir):
        match = _CER_IN_NAME.search(path.name)
        if path.name.startswith(BEST_PREFIX) and match:
            scored.append((float(match.group(1)), -saved_at(path), path))
    return min(scored)[2] if scored else None


def resolve_checkpoint(ckpt_path: str | None, default_root_dir: str | Path) -> str | None:
    """`last` and `best` to the run's checkpoint of that name; other paths as given, if they exist."""
    if ckpt_path is None:
        return None
    if ckpt_path not in NAMED_CHECKPOINTS:
        if not Path(ckpt_path).exists():
            raise NoCheckpointError(f"--ckpt_path {ckpt_path}: no such checkpoint file or directory")
        verify_checkpoint(ckpt_path)
        return ckpt_path
    finder = find_last_checkpoint if ckpt_path == "last" else find_best_checkpoint
    found = finder(default_root_dir)
    if found is not None and finder is find_best_checkpoint:
        verify_checkpoint(found)
    if found is None:
        what = "complete checkpoint" if ckpt_path == "last" else "best-*-cer=*.ckpt checkpoint (written when fit validates)"
        raise NoCheckpointError(f"--ckpt_path {ckpt_path}: no {what} under {RunDir(default_root_dir).checkpoints}")
    return str(found)


class RunDirCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` writing to `<trainer.default_root_dir>/checkpoints` unless `dirpath` is set,
    so every run of a config finds its checkpoints in the same place whatever logger version it gets.
    It never saves in the middle of an accumulation window (the partial gradients are not saved,
    so such a checkpoint would not resume exactly): a validation there is not saved, with a warning."""

    @property
    def state_key(self) -> str:
        """The class alone: Lightning's key spells out the cadence, so a run validated, tested or
        resumed with another `every_n_train_steps` would lose this callback's state (and be told to
        add a callback it already has). A run has one callback of each of these classes."""
        return type(self).__qualname__

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        # Between two optimizer steps nothing new is due (the step count has not moved), and a save
        # that is due by time waits for the window's end.
        if at_window_boundary(trainer):
            super().on_train_batch_end(trainer, *args, **kwargs)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and not at_window_boundary(trainer):
            rank_zero_warn(
                f"{type(self).__name__}: no checkpoint in the middle of an accumulation window (step {trainer.global_step})"
            )
            return
        super().on_validation_end(trainer, pl_module)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(RunDir(trainer.default_root_dir).checkpoints)
        with warnings.catch_warnings():
            # A fit only writes beside checkpoints it resumes from (`fit` refuses otherwise).
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_in = state_dict.get("dirpath")
        if saved_in is not None and self.dirpath is not None and saved_in != self.dirpath:
            state_dict = self._read_from_here(state_dict, Path(saved_in).resolve())
        super().load_state_dict(state_dict)

    def _read_from_here(self, state: dict[str, Any], saved_in: Path) -> dict[str, Any]:
        """The state saved in the folder `saved_in` as it reads from this callback's folder: a run
        moved (or named by another path) keeps the checkpoints it still has here, so its best one
        stays the one to beat and to replace; another folder's checkpoints are not this run's.
        (Lightning would keep only the best path, into the old folder, and say so in a warning.)"""
        folder = Path(self.dirpath)

        def here(path: str) -> str | None:
            if not path:
                return None
            try:
                moved = folder / Path(path).resolve().relative_to(saved_in)
            except ValueError:
                return None
            return str(moved) if moved.exists() else None

        kept = {moved: score for path, score in state.get("best_k_models", {}).items() if (moved := here(path))}
        best = here(state.get("best_model_path", ""))
        return {
            **state,
            "dirpath": self.dirpath,
            "best_k_models": kept,
            "best_model_path": best or "",
            "best_model_score": state.get("best_model_score") if best else None,
            "kth_best_model_path": here(state.get("kth_best_model_path", "")) or "",
            "kth_value": state.get("kth_value", self.kth_value) if kept else self.kth_value,
            "last_model_path": here(state.get("last_model_path", "")) or "",
        }


def adopt_older_callback_states(checkpoint: dict[str, Any]) -> None:
    """Checkpoints written before the keys above named our callbacks `RunCheckpoint{'monitor': ...}`:
    file their states under today's keys. Called from the LightningModule's `on_load_checkpoint`,
    which Lightning runs before it matches callback states."""
    states = checkpoint.get("callbacks")
    for key in list(states or {}):
        name = key.split("{", 1)[0] if isinstance(key, str) else None
        if name in ("RunCheckpoint", "BestCheckpoint") and name != key:
            states.setdefault(name, states.pop(key))


class BestCheckpoint(RunDirCheckpoint):
    """Keeps the checkpoint with the lowest held-out CER seen so far (`best-step=N-cer=X.ckpt`)."""

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str | None = None,
        monitor: str = "val/cer",
        mode: str = "min",
        save_top_k: int = 1,
        auto_insert_metric_name: bool = False,
        save_on_train_epoch_end: bool | None = False,
        **kwargs,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename or BEST_PREFIX + "step={step}-cer={val/cer:.4f}",
            monitor=monitor,
            mode=mode,
            save_top_k=save_top_k,
            auto_insert_metric_name=auto_insert_metric_name,
            save_on_train_epoch_end=save_on_train_epoch_end,
            **kwargs,
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Validation without generation (`model.val_generate: false`) has no CER to rank by, and a
        # validation that could score no sample logs NaN: neither is a "best" checkpoint.
        cer = trainer.callback_metrics.get(self.monitor)
        if cer is not None and not math.isnan(float(cer)):
            super().on_validation_end(trainer, pl_module)


class RunCheckpoint(RunDirCheckpoint):
    """Periodic run checkpoints, saving the last one also when training ends between two
    `every_n_train_steps` saves."""

    def saved_elsewhere(self, step: int) -> None:
        """Another callback saved `last.ckpt` at `step` (a preemption checkpoint): the end of training
        must not overwrite it, because a run stopped mid-epoch records its epoch as finished."""
        self._last_global_step_saved = step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step and not trainer.sanity_checking:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
