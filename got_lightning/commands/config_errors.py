"""Config mistakes as one line: the key, what is wrong with it, and where the options are listed,
instead of jsonargparse's usage dump and its nested account of every union subtype it tried."""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from lightning.pytorch.cli import LightningArgumentParser

_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_KEY = re.compile(r'Parser key "([^"]+)"')


def condensed(message: str) -> str:
    """The part of a jsonargparse error a user acts on, on one line."""
    key = _KEY.search(message)
    unknown = _NOT_ACCEPTED.search(message)
    if key and unknown:
        return f"{key[1]}: unknown key {unknown[1]!r}"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not key:
        return " ".join(lines)
    first = lines[0].replace(f"{key[0]}:", "").strip()
    details = [line.lstrip("- ") for line in lines[1:] if not line.startswith(("Subtypes:", "Errors:", "Given value type:"))]
    return f"{key[1]}: {first or (details[0] if details else '')}".rstrip(": ")


class OneLineErrorsParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors are one line and exit status 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        print(f"got-lightning: error: {condensed(message)} (`{prog} --help` lists every option)", file=sys.stderr)
        sys.exit(2)
