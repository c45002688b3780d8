"""`got-lightning compare BASE.jsonl FINETUNED.jsonl`: what fine-tuning changed, in the terminal and as HTML."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from got_lightning.evaluation.comparison import Comparison, SampleChange, character_diff, compare
from got_lightning.evaluation.report_html import render_report

DIFF_STYLES = {"equal": "", "wrong": "bold red", "missing": "strike yellow"}
VERDICT_STYLES = {"better": "green", "worse": "red", "same": ""}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="base vs fine-tuned predictions.jsonl side by side (terminal + HTML)")
    parser.add_argument("base", help="predictions.jsonl of the base model (validate without a checkpoint)")
    parser.add_argument("finetuned", help="predictions.jsonl of the fine-tuned model")
    parser.add_argument("--html", help="report file to write (default: comparison.html beside FINETUNED)")
    parser.add_argument("--top", type=int, default=10, help="improvements and regressions to show")


def diff_text(prediction: str, reference: str) -> Text:
    text = Text()
    for segment in character_diff(prediction, reference):
        text.append(segment.text, style=DIFF_STYLES[segment.kind])
    return text


def totals_table(comparison: Comparison) -> Table:
    table = Table(title=f"{len(comparison.changes)} shared held-out samples")
    for column in ("metric", "base", "fine-tuned", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in comparison.metric_changes():
        table.add_row(m.label, f"{m.base:.4f}", f"{m.tuned:.4f}", Text(f"{m.change:+.4f}", style=VERDICT_STYLES[m.verdict]))
    return table


def samples_table(title: str, changes: list[SampleChange]) -> Table:
    table = Table(title=title, show_lines=True)
    for column in ("image", "CER", "reference", "base", "fine-tuned"):
        table.add_column(column, overflow="fold")
    for change in changes:
        table.add_row(
            change.image, f"{change.base_score.cer:.3f} → {change.tuned_score.cer:.3f}", change.reference,
            diff_text(change.base, change.reference), diff_text(change.tuned, change.reference),
        )
    return table


def run(args: argparse.Namespace) -> int:
    comparison = compare(args.base, args.finetuned)
    console = Console()
    console.print(totals_table(comparison))
    console.print(
        f"[green]{len(comparison.improved)} improved[/green], [red]{len(comparison.regressed)} regressed[/red], "
        f"{comparison.unchanged} unchanged"
        + (f" ({comparison.only_base} only in base, {comparison.only_tuned} only in fine-tuned)" if comparison.only_base or comparison.only_tuned else "")
    )
    console.print(samples_table(f"top {args.top} improvements", comparison.improved[: args.top]))
    console.print(samples_table(f"top {args.top} regressions", comparison.regressed[: args.top]))
    html = Path(args.html) if args.html else Path(args.finetuned).with_name("comparison.html")
    html.write_text(render_report(comparison, args.top), encoding="utf-8")
    console.print(f"HTML report: {html}")
    return 0
