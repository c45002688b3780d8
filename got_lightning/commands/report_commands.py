"""`got-lightning compare BASE.jsonl FINETUNED.jsonl` and `got-lightning report RUN_DIR`: their
parsers; the body is in `report_console`."""

from __future__ import annotations

import argparse

MOST_ROWS = 50  # the terminal shows a summary; the HTML and JSON files have every sample


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    compare_parser = subparsers.add_parser(
        "compare", help="base vs fine-tuned predictions.jsonl: what changed, what is still wrong"
    )
    compare_parser.add_argument("base", help="predictions.jsonl of the base model (validate without a checkpoint)")
    compare_parser.add_argument("finetuned", help="predictions.jsonl of the fine-tuned model")
    compare_parser.add_argument("--html", help="report to write (default: comparison.html beside FINETUNED)")
    report_parser = subparsers.add_parser("report", help="a run's held-out CER and loss over its steps, and its error analysis")
    report_parser.add_argument("run_dir", help="the run's trainer.default_root_dir (with validation/step-*/)")
    report_parser.add_argument("--html", help="report to write (default: RUN_DIR/report.html)")
    for parser in (compare_parser, report_parser):
        parser.add_argument("--json", help="the report's data as JSON (default: the HTML file's name with .json)")
        parser.add_argument("--top", type=int, default=10, help=f"rows per terminal table (at most {MOST_ROWS})")
        parser.add_argument(
            "--image-mb",
            "--image_mb",
            dest="image_mb",
            type=float,
            default=25.0,
            help="size budget of the page images embedded in the HTML (worst samples first)",
        )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from got_lightning.commands.report_console import run_compare, run_report

    console = Console()
    return run_compare(args, console) if args.command == "compare" else run_report(args, console)
