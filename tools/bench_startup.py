"""How long a user waits: `got-lightning COMMAND --help` for every command, and from typing
`got-lightning validate --config configs/demo.yaml` to its first validation batch (the demo's tiny
model, built by a first untimed run) and to its end. Each measure is the median of `--repeats`
fresh processes. With `--baseline DIR` (a checkout of another commit, e.g. made with `git worktree
add`), the same measures run on it too, alternating with ours, each in its own work folder so
each version writes its own demo model.

    python tools/bench_startup.py [--repeats 3] [--workdir DIR] [--baseline DIR]
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_common import emit
from jsonargparse import CLI

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("fit", "validate", "test", "predict", "serve", "data", "init", "convert", "export", "compare", "report", "score")
FIRST_BATCH = re.compile(r"first validation batch after ([\d.]+) s")


@dataclass
class Version:
    """One checkout's executable, run in its own work folder."""

    checkout: Path
    folder: Path
    times: dict[str, list[float]] = field(default_factory=dict)

    def command(self) -> list[str]:
        if self.checkout == REPO:
            return [str(Path(sys.executable).parent / "got-lightning")]
        launch = (
            f"import sys; sys.path.insert(0, {str(self.checkout)!r}); from got_lightning import cli; "
            "sys.exit(getattr(cli, 'executable', cli.main)())"  # the console script's function, where it has one
        )
        return [sys.executable, "-c", launch]

    def run(self, *args: str, clocked: bool = False) -> tuple[float, str]:
        started = time.time()
        env = {**os.environ, "STARTUP_CLOCK_T0": repr(started)}
        if clocked:
            env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tools"), os.environ.get("PYTHONPATH", "")])
            args = (*args, "--trainer.callbacks+=startup_clock.FirstBatchClock")
        result = subprocess.run([*self.command(), *args], cwd=self.folder, env=env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"{self.checkout}: got-lightning {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return time.time() - started, result.stdout

    def record(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)


def main(repeats: int = 3, workdir: str | None = None, baseline: str | None = None) -> None:
    """Median seconds of each `--help` and of the demo's first validation batch (ours, and the
    baseline checkout's when given)."""
    root = Path(workdir or tempfile.mkdtemp(prefix="bench-startup-"))
    ours = Version(REPO, root / "ours")
    versions = [ours] + ([Version(Path(baseline).resolve(), root / "baseline")] if baseline else [])
    validate = ["validate", "--config", str(REPO / "configs" / "demo.yaml"), "--trainer.logger", "false"]
    validate += ["--trainer.limit_val_batches", "1"]
    for version in versions:
        version.folder.mkdir(parents=True, exist_ok=True)
        version.run(*validate)  # builds this version's demo model and pages once
    for _ in range(repeats):
        for version in versions:
            for command in COMMANDS:
                version.record(f"{command} --help", version.run(command, "--help")[0])
            seconds, output = version.run(*validate, clocked=True)
            version.record("validate demo: command to first batch", float(FIRST_BATCH.search(output).group(1)))
            version.record("validate demo: whole command", seconds)
    for name, runs in ours.times.items():
        base = statistics.median(versions[1].times[name]) if baseline else None
        emit(f"startup/{name}", statistics.median(runs), base, "s")


if __name__ == "__main__":
    CLI(main, as_positional=False)
