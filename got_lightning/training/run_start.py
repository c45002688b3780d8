"""A `fit` into a run directory that already holds checkpoints continues it (`--ckpt_path last`)
or starts over on purpose (`--fresh_start true`): never a second `last-v1.ckpt` beside the first,
which a later `--ckpt_path last` would not pick."""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

from got_lightning.core.run_dir import RunDir
from got_lightning.training.checkpoints import complete_checkpoints, saved_at
from got_lightning.training.preflight import PreflightError


def start_in_place(run_dir: str | Path, ckpt_path: str | None, fresh_start: bool) -> Path | None:
    """Refuse a plain `fit` over an earlier run's checkpoints; on `fresh_start`, move that run's
    checkpoints and validation results into `replaced-<UTC time>/` (returned)."""
    run = RunDir(run_dir)
    earlier = sorted(complete_checkpoints(run.root), key=saved_at)
    if ckpt_path is not None:
        if fresh_start:
            raise PreflightError("--fresh_start starts without a checkpoint: drop it or --ckpt_path")
        return None
    if not earlier:
        return None
    if not fresh_start:
        raise PreflightError(
            f"{run.root} holds {len(earlier)} checkpoint(s) of an earlier run (newest: {earlier[-1]}): "
            "continue it with --ckpt_path last, or start over with --fresh_start true "
            "(its checkpoints and validation results are moved into replaced-<time>/, not deleted)"
        )
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = run.replaced(stamp)
    aside.mkdir()
    for output in run.outputs_of_a_run:
        if output.exists():
            os.replace(output, aside / output.name)
    for requeue in run.requeue_checkpoints():
        os.replace(requeue, aside / requeue.name)
    print(f"--fresh_start: the earlier run's checkpoints and validation results are now in {aside}", file=sys.stderr)
    return aside
