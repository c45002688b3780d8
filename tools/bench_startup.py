"""How long a user waits: `got-lightning COMMAND --help` for every command, and from typing
`got-lightning validate --config configs/demo.yaml` to its first validation batch (the demo's tiny
model, built by a first untimed run). Each measure is the median of `--repeats` fresh processes.

    python tools/bench_startup.py [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jsonargparse import CLI

from bench_common import emit

REPO = Path(__file__).resolve().parent.parent
EXECUTABLE = str(Path(sys.executable).parent / "got-lightning")
COMMANDS = ("fit", "validate", "test", "predict", "serve", "data", "init", "convert", "export", "compare", "report", "score")


def _seconds(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.time()
    environment = {**(env or os.environ), "STARTUP_CLOCK_T0": repr(started)}
    result = subprocess.run([EXECUTABLE, *args], cwd=cwd, env=environment, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"got-lightning {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.time() - started, result.stdout


def main(repeats: int = 3, workdir: str | None = None) -> None:
    """Median seconds of each `--help` and of the demo's first validation batch."""
    folder = Path(workdir or tempfile.mkdtemp(prefix="bench-startup-"))
    folder.mkdir(parents=True, exist_ok=True)
    for command in COMMANDS:
        runs = [_seconds(command, "--help", cwd=folder)[0] for _ in range(repeats)]
        emit(f"startup/{command} --help", statistics.median(runs), None, "s")
    config = str(REPO / "configs" / "demo.yaml")
    validate = ["validate", "--config", config, "--trainer.logger", "false", "--trainer.limit_val_batches", "1"]
    _seconds(*validate, cwd=folder)  # builds the demo's model and pages once
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), os.environ.get("PYTHONPATH", "")])}
    clocked = [*validate, "--trainer.callbacks+=startup_clock.FirstBatchClock"]
    first, total = [], []
    for _ in range(repeats):
        seconds, output = _seconds(*clocked, cwd=folder, env=env)
        first.append(float(re.search(r"first validation batch after ([\d.]+) s", output).group(1)))
        total.append(seconds)
    emit(
        "startup/validate demo: command to first batch",
        statistics.median(first),
        None,
        "s",
        whole_command_s=round(statistics.median(total), 3),
    )


if __name__ == "__main__":
    CLI(main, as_positional=False)
