"""The top-level parser, which lists every command, and the commands that sit beside LightningCLI's:
`data`, `init`, `convert`, `export`, `compare`, `report`, `score`. Nothing heavy is imported before a command
needs it, so help and the light commands start at once."""

from __future__ import annotations

import argparse
import shlex

from got_lightning.commands import data_command, model_commands, report_commands, score_command
from got_lightning.core.errors import run_reporting_errors

LIGHTNING_COMMANDS = {
    "fit": "train (resume with --ckpt_path last)",
    "validate": "held-out loss and CER (--ckpt_path last|best|PATH; none: the base model)",
    "test": "the held-out evaluation under test/ names",
    "predict": "OCR new pages (--data.predict_input)",
    "serve": "an OpenAI-compatible HTTP server (--config, --ckpt_path or --model.model_path)",
}
RUNNERS = {
    "data": data_command.run,
    "init": model_commands.run,
    "convert": model_commands.run,
    "export": model_commands.run,
    "compare": report_commands.run,
    "report": report_commands.run,
    "score": score_command.run,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="got-lightning",
        description="Fine-tune GOT-OCR2.0 on your own pages with PyTorch Lightning.",
        epilog="fit, validate, test and predict are LightningCLI commands: `got-lightning fit --help` lists their options.",
    )
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in LIGHTNING_COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    data_command.add_parser(subparsers)
    model_commands.add_parsers(subparsers)
    report_commands.add_parsers(subparsers)
    score_command.add_parser(subparsers)
    return top


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.command_line = shlex.join(["got-lightning", *argv])
    return run_reporting_errors(lambda: RUNNERS[args.command](args), f"got-lightning {args.command}")
