"""The `got-lightning` executable."""

from __future__ import annotations

import argparse
import logging
import sys

from got_lightning.commands import data as data_command
from got_lightning.config_file import ConfigError
from got_lightning.data.errors import AnnotationFileError

OWN_COMMANDS = ("data",)


def _own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="got-lightning", description="Fine-tune GOT-OCR2.0 with PyTorch Lightning")
    subparsers = parser.add_subparsers(dest="command", required=True)
    data_command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = _own_parser().parse_args(argv)
    try:
        if args.command == "data":
            return data_command.run(args)
    except (ConfigError, AnnotationFileError, ValueError, FileNotFoundError) as error:
        print(f"got-lightning {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
