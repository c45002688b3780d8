"""The commands that sit beside LightningCLI's: `data`, `init`, `convert`, `export`, `compare`."""

from __future__ import annotations

import argparse
import shlex
import sys

from got_lightning.commands import compare as compare_command
from got_lightning.commands import data as data_command
from got_lightning.commands import model as model_command
from got_lightning.config_file import ConfigError
from got_lightning.data.errors import AnnotationFileError
from got_lightning.model.model_dir import ModelDirError
from got_lightning.model.original import ConversionError

COMMANDS = ("data", "init", "convert", "export", "compare")
USER_ERRORS = (ConfigError, AnnotationFileError, ModelDirError, ConversionError, ValueError, FileNotFoundError)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="got-lightning", description="Fine-tune GOT-OCR2.0 with PyTorch Lightning")
    subparsers = top.add_subparsers(dest="command", required=True)
    data_command.add_parser(subparsers)
    model_command.add_parsers(subparsers)
    compare_command.add_parser(subparsers)
    return top


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.command_line = shlex.join(["got-lightning", *argv])
    try:
        if args.command == "data":
            return data_command.run(args)
        if args.command == "compare":
            return compare_command.run(args)
        return model_command.run(args)
    except USER_ERRORS as error:
        print(f"got-lightning {args.command}: error: {error}", file=sys.stderr)
        return 2
