"""The `got-lightning` executable: LightningCLI's fit/validate/test/predict, and our own commands
beside them (help and the light commands start without importing torch or Lightning)."""

from __future__ import annotations

import logging
import sys

from got_lightning.commands.dispatch import LIGHTNING_COMMANDS
from got_lightning.commands.dispatch import run as run_command


def _configure_logging() -> None:
    """Warnings of every library once, with their level; Lightning's loggers print their own."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _LightningPrintsItsOwn) for f in handler.filters):
            handler.addFilter(_LightningPrintsItsOwn())


class _LightningPrintsItsOwn(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("lightning.pytorch", "lightning.fabric"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _configure_logging()
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
