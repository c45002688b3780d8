"""The `got-lightning` executable: LightningCLI's fit/validate/test/predict, and our own commands
beside them (help and the light commands start without importing torch or Lightning)."""

from __future__ import annotations

import atexit
import gc
import logging
import sys
import warnings
from collections.abc import Callable

from got_lightning.commands.dispatch import LIGHTNING_COMMANDS
from got_lightning.commands.dispatch import run as run_command
from got_lightning.commands.stored_help import asks_only_for_help, stored_help
from got_lightning.core.errors import run_reporting_errors


def _configure_logging() -> None:
    """Warnings of every library once, with their level (Lightning's loggers print their own); our
    own summaries at INFO; library warnings about the libraries' own internals silenced."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("got_lightning").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _LightningPrintsItsOwn) for f in handler.filters):
            handler.addFilter(_LightningPrintsItsOwn())
    # torchdata's StatefulDataLoader still calls torch.set_vital, deprecated by torch 2.13; and
    # Lightning's pytree helper uses LeafSpec, deprecated by the same torch. Neither is ours to fix
    # nor the user's to act on.
    warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    for name, notice in _NO_NEWS.items():
        library_log = logging.getLogger(name)
        if not any(isinstance(f, _Without) and f.start == notice for f in library_log.filters):
            library_log.addFilter(_Without(notice))


_NO_NEWS = {
    # DeepSpeed announces on import that it found no GPU: in a rehearsal of a DeepSpeed run on CPU
    # ranks, which the user asked for, that is no news.
    "DeepSpeed": "Setting accelerator to CPU",
    # bitsandbytes on a CPU with AVX512-BF16 tries to fetch a 4-bit matmul kernel from the hub and
    # warns when it cannot: its 8-bit optimizers, all we use of it, never need that kernel.
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
}
"""Per library logger, the start of a message that is not the user's business."""


class _Without(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


class _LightningPrintsItsOwn(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("lightning.pytorch", "lightning.fabric"))


def _print_help(text: str) -> int:
    sys.stdout.write(text)
    return 0


def _prepared(argv: list[str]) -> Callable[[], int]:
    """The command `argv` asks for, ready to run: its modules imported and logging set up."""
    if argv and argv[0] in LIGHTNING_COMMANDS and asks_only_for_help(argv) and (text := stored_help(argv[0])) is not None:
        return lambda: _print_help(text)
    _configure_logging()
    if argv and argv[0] == "serve":
        from got_lightning.commands.lightning_commands import LIGHTNING_USER_ERRORS
        from got_lightning.commands.serve_command import run_serve

        return lambda: run_reporting_errors(lambda: run_serve(argv[1:]), user_errors=LIGHTNING_USER_ERRORS)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from got_lightning.commands.lightning_commands import run_lightning

        return lambda: run_lightning(argv)
    return lambda: run_command(argv)


def main(argv: list[str] | None = None) -> int:
    return _prepared(sys.argv[1:] if argv is None else argv)()


def executable() -> int:
    """The console script: `main` for a process of its own."""
    # Importing torch, transformers and Lightning creates about 600,000 objects, and Python's
    # collector walks them again and again while they are created: 0.6 to 0.9 s of every start.
    # It stays off until the command's modules are imported; then they are frozen out of its way
    # (what it would have found then is about 10,000 objects of import-time litter).
    gc.disable()
    try:
        command = _prepared(sys.argv[1:])
    finally:
        gc.freeze()
        gc.enable()
    # Everything is written by now (atexit handlers run last-registered first, so the loggers'
    # flushes come before this one); without it the interpreter's final garbage collection walks
    # every object the command created since: about 1 s of every command.
    atexit.register(gc.freeze)
    return command()


if __name__ == "__main__":
    sys.exit(executable())
