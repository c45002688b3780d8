"""`got-lightning fit --help` and its siblings without importing torch. LightningCLI builds its parser
from the signatures of the Trainer, the model and the data, which costs the whole of torch,
Lightning and transformers to import (6 s on 2 cores, docs/benchmarks.md); the help is rendered ahead
from that same parser by `tools/render_help.py` and printed when the installed libraries are those it
was rendered with (a test keeps the two identical). Any other case asks the live parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HELP_DIR = Path(__file__).parent / "help"
VERSIONS_FILE = "versions.json"
# The packages whose classes and docstrings make up the parser (and its known subclasses).
PACKAGES = ("got-lightning", "torch", "lightning", "jsonargparse", "transformers")
WIDTH = 100  # columns the stored help is rendered at
LIVE = "GOT_LIGHTNING_LIVE_HELP"  # set: always ask the live parser (rendering, tests)


def installed_versions() -> dict[str, str | None]:
    def installed(package: str) -> str | None:
        try:
            return version(package).split("+")[0]  # torch's CPU and CUDA builds have the same classes
        except PackageNotFoundError:
            return None

    return {package: installed(package) for package in PACKAGES}


def stored_help(command: str, directory: Path = HELP_DIR) -> str | None:
    """The stored help of a LightningCLI command, or None when it was rendered for other libraries."""
    if os.environ.get(LIVE):
        return None
    try:
        recorded = json.loads((directory / VERSIONS_FILE).read_text(encoding="utf-8"))
        text = (directory / f"{command}.txt").read_text(encoding="utf-8")
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return text if recorded == installed_versions() else None


def asks_only_for_help(argv: list[str]) -> bool:
    """`got-lightning COMMAND --help` alone (with a config, the help shows the config's values)."""
    return len(argv) == 2 and argv[1] in ("-h", "--help")


def live_help(command: str) -> str:
    """What the live parser prints for `got-lightning COMMAND --help` at the stored width."""
    environment = {**os.environ, LIVE: "1", "COLUMNS": str(WIDTH)}
    result = subprocess.run(
        [sys.executable, "-m", "got_lightning.cli", command, "--help"],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return result.stdout
