"""The body of `got-lightning compare` and `report`: what fine-tuning changed and what is still
wrong, as a terminal summary, a self-contained HTML page and a JSON file. Every string from data or
predictions is printed as plain text, never as markup."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from got_lightning.commands.report_commands import MOST_ROWS
from got_lightning.core.errors import InputNotFoundError
from got_lightning.evaluation.paper_metrics import PAPER_NAMES
from got_lightning.reports.comparison import Comparison, SampleChange, align, compare
from got_lightning.reports.page_images import embed
from got_lightning.reports.report_data import analysis, summary
from got_lightning.reports.report_html import render_report
from got_lightning.reports.training_curve import read_validations, svg_chart

VERDICT_STYLES = {"better": "green", "worse": "red", "same": ""}


def reading_text(prediction: str, reference: str) -> Text:
    """The reading with wrong characters red and the expected ones after them in green ⟨angle brackets⟩."""
    text = Text()
    for segment in align(prediction, reference):
        if segment.kind == "equal":
            text.append(segment.prediction)
        elif segment.kind == "extra":
            text.append(segment.prediction, style="bold red underline")
        elif segment.kind == "missing":
            text.append(f"\u27e8{segment.reference}\u27e9", style="yellow strike")
        else:
            text.append(segment.prediction, style="bold red")
            text.append(f"\u27e8{segment.reference}\u27e9", style="green")
    return text


def totals_table(comparison: Comparison) -> Table:
    table = Table(title=f"{len(comparison.changes)} shared held-out samples")
    for column in ("metric", "base", "fine-tuned", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for m in comparison.metric_changes():
        table.add_row(m.label, f"{m.base:.4f}", f"{m.tuned:.4f}", Text(f"{m.change:+.4f}", style=VERDICT_STYLES[m.verdict]))
    return table


def datasets_table(comparison: Comparison) -> Table:
    table = Table(title="per dataset")
    for column in ("dataset", "samples", "base CER", "fine-tuned CER", "regressed"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for name, changes in comparison.by_dataset().items():
        table.add_row(
            Text(name),
            str(len(changes)),
            f"{comparison.totals('base', changes)['cer']:.4f}",
            f"{comparison.totals('tuned', changes)['cer']:.4f}",
            str(sum(1 for c in changes if c.edit_change > 0)),
        )
    return table


def confusions_table(comparison: Comparison, rows: int) -> Table:
    table = Table(title="commonest confusions after fine-tuning (expected -> read)")
    for column in ("expected", "read", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for expected, read, count in comparison.confusions("tuned")[:rows]:
        table.add_row(Text(repr(expected) if expected else "(none)"), Text(repr(read) if read else "(none)"), str(count))
    return table


def samples_table(title: str, changes: list[SampleChange], rows: int) -> Table:
    table = Table(title=f"{title}: {min(rows, len(changes))} of {len(changes)}", show_lines=True)
    for column in ("image", "dataset", "edits", "CER", "fine-tuned reading ⟨expected⟩"):
        table.add_column(column, overflow="fold")
    for change in changes[:rows]:
        table.add_row(
            Text(change.image),
            Text(change.dataset),
            f"{change.base_score.edits} -> {change.tuned_score.edits}",
            f"{change.base_score.cer:.3f} -> {change.tuned_score.cer:.3f}",
            reading_text(change.tuned, change.reference),
        )
    return table


def paper_table(figures: dict) -> Table:
    base, tuned = figures["paper"]["base"], figures["paper"]["tuned"]
    table = Table(title=f"the GOT paper's metrics (upstream's definitions, {tuned['num_scored']} pairs)")
    for column in ("metric", "base", "fine-tuned", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in PAPER_NAMES:
        if base[name] is None or tuned[name] is None:
            table.add_row(name, "n/a", "n/a", "")
            continue
        table.add_row(name, f"{base[name]:.4f}", f"{tuned[name]:.4f}", f"{tuned[name] - base[name]:+.4f}")
    return table


def interval_text(change: dict) -> Text:
    return Text(
        f"CER change {change['cer_change']:+.4f}, 95% interval [{change['low']:+.4f}, {change['high']:+.4f}] "
        f"(paired bootstrap, {change['resamples']} resamples, seed {change['seed']}; "
        f"{change['other_sign_share']:.1%} of them change the other way)"
    )


def breakdown_table(title: str, label: str, base: dict, tuned: dict, size_key: str) -> Table:
    table = Table(title=title)
    for column in (label, size_key.replace("_", " "), "base CER", "fine-tuned CER"):
        table.add_column(column, justify="left" if column == label else "right")
    for name, row in tuned.items():
        before = base.get(name, {}).get("cer")
        table.add_row(
            Text(name),
            str(row[size_key]),
            "n/a" if before is None else f"{before:.4f}",
            "n/a" if row["cer"] is None else f"{row['cer']:.4f}",
        )
    return table


def failures_text(figures: dict) -> Text:
    base, tuned = figures["failures"]["base"], figures["failures"]["tuned"]
    text = Text(
        f"stopped at the token limit: base {base['num_truncated']}, fine-tuned {tuned['num_truncated']}; "
        f"ending in a loop: base {base['num_repetition']}, fine-tuned {tuned['num_repetition']}"
    )
    confidence = figures["confidence"]["tuned"]
    if confidence:
        text.append(
            f"\nconfidence: the {confidence['least_confident']} least confident fine-tuned pages have CER "
            f"{confidence['least_confident_cer']:.4f} ({confidence['least_confident_wrong_share']:.0%} wrong), "
            f"the other {confidence['pages'] - confidence['least_confident']} {confidence['rest_cer']:.4f} "
            f"({confidence['rest_wrong_share']:.0%} wrong)"
        )
    return text


def print_summary(console: Console, comparison: Comparison, top: int, figures: dict) -> None:
    rows = max(0, min(top, MOST_ROWS))
    console.print(totals_table(comparison))
    console.print(interval_text(figures["cer_change"]))
    console.print(paper_table(figures))
    counts = Text()
    counts.append(f"{len(comparison.improved)} improved", style="green")
    counts.append(", ")
    counts.append(f"{len(comparison.regressed)} regressed", style="red")
    counts.append(f", {comparison.unchanged} unchanged; {len(comparison.still_wrong)} still wrong after fine-tuning")
    if comparison.only_base or comparison.only_tuned:
        counts.append(f" ({comparison.only_base} only in base, {comparison.only_tuned} only in fine-tuned)")
    console.print(counts)
    if len(comparison.datasets) > 1:
        console.print(datasets_table(comparison))
    if comparison.still_wrong and rows:
        console.print(confusions_table(comparison, rows))
    console.print(
        breakdown_table(
            "CER by character class", "class", figures["by_class"]["base"], figures["by_class"]["tuned"], "reference_chars"
        )
    )
    console.print(
        breakdown_table(
            "CER by page length (reference characters)",
            "length",
            figures["by_length"]["base"],
            figures["by_length"]["tuned"],
            "pages",
        )
    )
    console.print(failures_text(figures))
    for title, changes in (
        ("still wrong, most edits first", comparison.still_wrong),
        ("improved, largest drop in edits first", comparison.improved),
        ("regressed, largest rise in edits first", comparison.regressed),
        ("pages to check first, least confident first", comparison.to_check),
    ):
        if changes and rows:
            console.print(samples_table(title, changes, rows))
        elif not changes:
            console.print(Text(f"{title.split(',')[0]}: none"))


def write_reports(
    comparison: Comparison,
    figures: dict,
    html: Path,
    json_path: Path,
    image_mb: float,
    title: str,
    charts: str = "",
    extra: dict | None = None,
) -> None:
    pictures, ids = embed(comparison, image_mb)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(render_report(comparison, pictures, ids, title, charts, figures), encoding="utf-8")
    json_path.write_text(
        json.dumps({**(extra or {}), **summary(comparison, figures)}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


def run_compare(args: argparse.Namespace, console: Console) -> int:
    comparison = compare(args.base, args.finetuned)
    figures = analysis(comparison)
    print_summary(console, comparison, args.top, figures)
    html = Path(args.html) if args.html else Path(args.finetuned).with_name("comparison.html")
    json_path = Path(args.json) if args.json else html.with_suffix(".json")
    write_reports(comparison, figures, html, json_path, args.image_mb, "Base vs fine-tuned")
    console.print(Text(f"HTML report: {html}\nJSON: {json_path}"))
    return 0


def run_report(args: argparse.Namespace, console: Console) -> int:
    validations = read_validations(args.run_dir)
    scored = [v for v in validations if v.predictions.is_file()]
    if not scored:
        raise InputNotFoundError(
            f"{args.run_dir} has no validation/step-*/ or validation/before-fit/ with predictions.jsonl "
            "(fit validates with --trainer.val_check_interval; --validate_before_fit adds the untrained model)"
        )
    first, last = scored[0], scored[-1]
    comparison = compare(first.predictions, last.predictions)
    points = Text("held-out CER by step: ")
    points.append(", ".join(f"{v.label} {v.cer:.4f}" if v.cer is not None else f"{v.label} not scored" for v in validations))
    console.print(points)
    console.print(Text(f"error analysis: {last.label} against {first.label}"))
    figures = analysis(comparison)
    print_summary(console, comparison, args.top, figures)
    html = Path(args.html) if args.html else Path(args.run_dir) / "report.html"
    json_path = Path(args.json) if args.json else html.with_suffix(".json")
    charts = svg_chart(validations, "cer", "held-out CER") + svg_chart(validations, "loss", "held-out loss")
    steps = [{"label": v.label, "step": v.step, "cer": v.cer, "loss": v.loss, "num_samples": v.num_samples} for v in validations]
    write_reports(
        comparison,
        figures,
        html,
        json_path,
        args.image_mb,
        f"Training report: {last.label} against {first.label}",
        charts,
        extra={"run_dir": str(args.run_dir), "validations": steps},
    )
    console.print(Text(f"HTML report: {html}\nJSON: {json_path}"))
    return 0
