"""`got-lightning score FILE`: our metrics and the GOT paper's, from predictions, without a model."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from got_lightning.evaluation.scores import TextNormalization

    parser = subparsers.add_parser(
        "score", help="CER and the GOT paper's metrics of a predictions.jsonl or of upstream's eval output"
    )
    parser.add_argument("file", help="predictions.jsonl, or a JSON list of {label, answer} (upstream GOT's eval scripts)")
    parser.add_argument("--json", help="write the scores to this JSON file")
    for option in fields(TextNormalization):
        parser.add_argument(
            f"--normalization.{option.name}",
            dest=f"normalization_{option.name}",
            type=_boolean,
            default=False,
            metavar="BOOL",
            help=f"{option.name} before scoring (default: false, the texts as written, as upstream scores them)",
        )


def _boolean(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from got_lightning.core.atomic_files import atomic_write_text
    from got_lightning.evaluation.paper_metrics import paper_summary
    from got_lightning.evaluation.scores import TextNormalization
    from got_lightning.reports.score_file import score_file

    options = {field.name: getattr(args, f"normalization_{field.name}") for field in fields(TextNormalization)}
    scores = score_file(args.file, TextNormalization(**options))
    console = Console()
    console.print(
        f"{scores['num_samples']} pair(s) from {args.file} ({scores['format']}): CER {scores['cer']:.4f}, "
        f"edit distance {scores['edit_distance']:.4f}, character F1 {scores['f1']:.4f}, exact {scores['exact_match']:.4f}\n"
        f"GOT paper's metrics: {paper_summary(scores['paper'])}\n"
        f"truncated {scores['num_truncated']}, ending in a loop {scores['num_repetition']}",
        markup=False,
        highlight=False,
    )
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(scores, ensure_ascii=False, indent=2) + "\n")
        console.print(f"wrote {args.json}", markup=False, highlight=False)
    return 0
