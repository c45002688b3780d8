"""The `got-lightning` executable: LightningCLI's fit/validate/test/predict, and our own commands
beside them (help and the light commands start without importing torch or Lightning)."""

from __future__ import annotations

import logging
import sys

from got_lightning.commands.dispatch import LIGHTNING_COMMANDS
from got_lightning.commands.dispatch import run as run_command


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if argv and argv[0] == "serve":
        from got_lightning.commands.serve import run_serve
        from got_lightning.commands.training import lightning_errors_as_lines

        return lightning_errors_as_lines(run_serve, argv[1:])
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from got_lightning.commands.training import run_lightning

        return run_lightning(argv)
    return run_command(argv)


if __name__ == "__main__":
    sys.exit(main())
