"""The one rule for errors: a `UserError` is a mistake in what the user gave (a config key, a file,
a flag, a setting) and is printed as one line with exit status 2; anything else is a bug and keeps
its traceback."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

BUG_HINT = (
    "got-lightning: this is an internal error, not a mistake in your input: "
    "please report it with the traceback above and the command that raised it"
)


class UserError(Exception):
    """A mistake in the user's input, described well enough to fix without a traceback."""


class SettingError(UserError, ValueError):
    """An option's value that cannot be used (out of range, unknown name, contradicting another)."""


class InputFileError(UserError, ValueError):
    """A file the user named exists but cannot be used (not the format the command reads)."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


def one_line(error: Exception) -> str:
    """The error's message on one line. Raised in a DataLoader worker, PyTorch re-raises it in the
    main process with the worker's traceback in the message: its last line holds the message."""
    message = str(error).strip()
    if "Original Traceback" in message:
        last = message.splitlines()[-1]
        message = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(message.split("\n"))


def report_bug(error: BaseException) -> None:
    """Print an internal error's traceback and where to report it."""
    traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    print(BUG_HINT, file=sys.stderr)


def run_reporting_errors(
    command: Callable[[], int], name: str = "got-lightning", user_errors: tuple[type[Exception], ...] = (UserError,)
) -> int:
    """Run a command: a user error (a `UserError`, or a library's own class for the user's mistakes
    in `user_errors`) becomes one line on stderr and exit status 2; any other exception keeps its
    traceback, followed by where to report it (exit status 1)."""
    try:
        return command()
    except user_errors as error:
        print(f"{name}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        report_bug(error)
        return 1
