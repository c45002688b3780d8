"""The comparison as one self-contained HTML file: run details, totals overall and per dataset,
character confusions, and every sample in a table the page's own script sorts, filters, searches
and pages, with readings aligned to the reference line by line (the expected character above the
one read) and page images that enlarge on click. No network, no external resource.

Safe by construction: text from data or predictions reaches the page only as escaped HTML or as
JSON inside a script element (with `<` escaped), and the script writes it with `textContent`."""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

from got_lightning.evaluation.paper_metrics import PAPER_NAMES
from got_lightning.reports.comparison import Comparison, MetricChange
from got_lightning.reports.report_data import analysis, page_rows

CONFUSIONS_SHOWN = 30
RUN_FIELDS = (
    ("global_step", "step"),
    ("checkpoint", "checkpoint"),
    ("model_path", "model"),
    ("loss", "held-out loss"),
    ("cer", "held-out CER"),
    ("num_samples", "samples scored"),
    ("num_skipped", "samples skipped"),
    ("normalization", "normalization"),
    ("generation", "generation"),
)

ASSETS = resources.files("got_lightning.reports") / "assets"


def _asset(name: str) -> str:
    """The page's stylesheet or script, kept as package data beside this module."""
    return (ASSETS / name).read_text(encoding="utf-8")


def _json_script(element_id: str, value: Any) -> str:
    """JSON inside a script element that no text can close early (`<` escaped)."""
    payload = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" id="{element_id}">{payload}</script>'


def _metric_rows(changes: list[MetricChange]) -> str:
    return "".join(
        f'<tr><td>{escape(m.label)}</td><td class="num">{m.base:.4f}</td><td class="num">{m.tuned:.4f}</td>'
        f'<td class="num {m.verdict}">{m.change:+.4f}</td></tr>'
        for m in changes
    )


def _totals_table(comparison: Comparison) -> str:
    return (
        "<table><tr><th>metric</th><th>base</th><th>fine-tuned</th><th>change</th></tr>"
        + _metric_rows(comparison.metric_changes())
        + "</table>"
    )


def _datasets_table(comparison: Comparison) -> str:
    groups = comparison.by_dataset()
    if len(groups) < 2:
        return ""
    rows = []
    for name, changes in groups.items():
        base, tuned = comparison.totals("base", changes)["cer"], comparison.totals("tuned", changes)["cer"]
        verdict = "better" if tuned < base else "worse" if tuned > base else "same"
        regressed = sum(1 for change in changes if change.edit_change > 0)
        rows.append(
            f'<tr><td>{escape(name)}</td><td class="num">{len(changes)}</td><td class="num">{base:.4f}</td>'
            f'<td class="num">{tuned:.4f}</td><td class="num {verdict}">{tuned - base:+.4f}</td>'
            f'<td class="num">{regressed}</td></tr>'
        )
    return (
        "<h2>Per dataset</h2><table><tr><th>dataset</th><th>samples</th><th>base CER</th><th>fine-tuned CER</th>"
        "<th>change</th><th>regressed</th></tr>" + "".join(rows) + "</table>"
    )


def _shown_char(char: str) -> str:
    if char == "":
        return '<span class="muted">(none)</span>'
    visible = {"\n": "\u23ce", " ": "\u2423", "\t": "\u21e5"}.get(char, char)
    return f'<span class="ch">{escape(visible)}</span>'


def _confusion_table(title: str, confusions: list[tuple[str, str, int]], element_id: str) -> str:
    rows = "".join(
        f'<tr><td>{_shown_char(expected)}</td><td>{_shown_char(read)}</td><td class="num">{count}</td></tr>'
        for expected, read, count in confusions[:CONFUSIONS_SHOWN]
    )
    more = (
        f'<p class="muted">{len(confusions) - CONFUSIONS_SHOWN} more pairs in the JSON file.</p>'
        if len(confusions) > CONFUSIONS_SHOWN
        else ""
    )
    empty = "" if confusions else '<p class="muted">no error</p>'
    return (
        f'<div><h3>{escape(title)}</h3><table id="{element_id}"><tr><th>expected</th><th>read</th><th>count</th></tr>'
        f"{rows}</table>{empty}{more}</div>"
    )


def _value(value: Any) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{key}={item}" for key, item in value.items() if item not in (False, None))
    elif isinstance(value, float):
        value = f"{value:.4f}"
    return escape("" if value is None else str(value))


def _run_table(comparison: Comparison) -> str:
    base, tuned = comparison.base_details or {}, comparison.tuned_details or {}
    rows = [f"<tr><td>predictions</td><td>{escape(comparison.base_file)}</td><td>{escape(comparison.tuned_file)}</td></tr>"]
    for key, label in RUN_FIELDS:
        if key in base or key in tuned:
            rows.append(f"<tr><td>{escape(label)}</td><td>{_value(base.get(key))}</td><td>{_value(tuned.get(key))}</td></tr>")
    missing = [
        side for side, details in (("base", comparison.base_details), ("fine-tuned", comparison.tuned_details)) if details is None
    ]
    note = f'<p class="muted">no metrics.json beside the {" and ".join(missing)} predictions</p>' if missing else ""
    return "<table><tr><th></th><th>base</th><th>fine-tuned</th></tr>" + "".join(rows) + "</table>" + note


def _sample_section(comparison: Comparison, pictures: list[str], picture_ids: dict[str, int]) -> str:
    options = "".join(f'<option value="{escape(name)}">{escape(name)}</option>' for name in comparison.datasets)
    embedded = f"{len(pictures)} of {len(comparison.changes)} page images embedded"
    headers = (
        ("image", "page"),
        ("dataset", "dataset"),
        ("status", "status"),
        ("edit_change", "edits base \u2192 tuned"),
        ("tuned_cer", "CER base \u2192 tuned"),
        ("confidence", "confidence (how it ended)"),
    )
    header_cells = "".join(f'<th class="sortable" data-key="{key}">{escape(label)}</th>' for key, label in headers)
    return (
        "<h2>Samples</h2>"
        '<p class="muted">Readings are aligned with the reference line by line: a wrong character carries the expected one '
        'above it, <span class="m">\u00b7</span> marks a character not read, <span class="x">underlined</span> ones were read '
        f"but are not in the reference. Click a column to sort, a page image to enlarge it. {escape(embedded)}.</p>"
        '<div class="controls">'
        '<label>show <select id="filter-status"><option value="all">all</option><option value="wrong">still wrong</option>'
        '<option value="improved">improved</option><option value="regressed">regressed</option>'
        '<option value="unchanged">unchanged</option><option value="exact">exact after</option>'
        '<option value="truncated">stopped at the token limit</option><option value="repetition">ends in a loop</option>'
        "</select></label>"
        f'<label>dataset <select id="filter-dataset"><option value="">all</option>{options}</select></label>'
        '<label>search <input id="search" type="search" placeholder="image, dataset or reference text"></label>'
        '<button id="prev" type="button">previous</button><button id="next" type="button">next</button>'
        '<span id="shown"></span></div>'
        f'<table id="samples"><thead><tr>{header_cells}'
        '<th class="sortable" data-key="tuned_edits">fine-tuned reading (base below)</th></tr></thead>'
        '<tbody id="sample-rows"></tbody></table>'
        '<div id="lightbox"><img alt="page"></div>'
        + _json_script("rows", page_rows(comparison, picture_ids))
        + _json_script("pictures", pictures)
    )


def _number(value: float | None, signed: bool = False) -> str:
    return "n/a" if value is None else f"{value:+.4f}" if signed else f"{value:.4f}"


def _interval(change: dict[str, Any]) -> str:
    return (
        f'<p id="cer-interval">CER change <strong>{change["cer_change"]:+.4f}</strong>, 95% interval '
        f"[{change['low']:+.4f}, {change['high']:+.4f}] (paired bootstrap over pages, {change['resamples']} resamples, "
        f"seed {change['seed']}; {change['other_sign_share']:.1%} of the resamples change the other way)</p>"
    )


def _paper_table(paper: dict[str, Any]) -> str:
    base, tuned = paper["base"], paper["tuned"]
    rows = "".join(
        f'<tr><td>{name}</td><td class="num">{_number(base[name])}</td><td class="num">{_number(tuned[name])}</td>'
        f'<td class="num">{_number(None if base[name] is None or tuned[name] is None else tuned[name] - base[name], True)}</td></tr>'
        for name in PAPER_NAMES
    )
    missing = f'<p class="muted">meteor: {escape(tuned["meteor_missing"])}</p>' if tuned.get("meteor_missing") else ""
    return (
        f"<h3>The GOT paper's metrics</h3><p class=\"muted\">Upstream's eval_ocr.py definitions over {tuned['num_scored']} "
        "pairs (words: jieba for Chinese, whitespace otherwise; precision and recall as upstream's argument order makes them).</p>"
        '<table id="paper"><tr><th>metric</th><th>base</th><th>fine-tuned</th><th>change</th></tr>' + rows + "</table>" + missing
    )


def _breakdown(title: str, element_id: str, label: str, size_key: str, base: dict[str, Any], tuned: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="num">{row[size_key]}</td>'
        f'<td class="num">{_number(base.get(name, {}).get("cer"))}</td><td class="num">{_number(row["cer"])}</td></tr>'
        for name, row in tuned.items()
    )
    return (
        f'<div><h3>{escape(title)}</h3><table id="{element_id}"><tr><th>{escape(label)}</th><th>{escape(size_key.replace("_", " "))}</th>'
        f"<th>base CER</th><th>fine-tuned CER</th></tr>{rows}</table></div>"
    )


def _failures_and_confidence(figures: dict[str, Any], comparison: Comparison) -> str:
    base, tuned = figures["failures"]["base"], figures["failures"]["tuned"]
    text = (
        f'<p id="failures">Stopped at the token limit: base {base["num_truncated"]}, fine-tuned {tuned["num_truncated"]}; '
        f"ending in a loop: base {base['num_repetition']}, fine-tuned {tuned['num_repetition']} (the last characters repeat "
        "one unit at least 3 times over at least 32 characters).</p>"
    )
    confidence = figures["confidence"]["tuned"]
    if confidence is None:
        return text + '<p class="muted">no confidence in these predictions (written before got-lightning recorded it)</p>'
    text += (
        f'<p id="confidence">The {confidence["least_confident"]} least confident fine-tuned pages have CER '
        f"{confidence['least_confident_cer']:.4f} ({confidence['least_confident_wrong_share']:.0%} of them wrong); the other "
        f"{confidence['pages'] - confidence['least_confident']} have {confidence['rest_cer']:.4f} "
        f"({confidence['rest_wrong_share']:.0%} wrong).</p>"
    )
    rows = "".join(
        f'<tr><td>{escape(row["image"])}</td><td class="num">{_number(row["confidence"])}</td>'
        f'<td class="num">{row["tuned_edits"]}</td><td class="num">{row["tuned_cer"]:.4f}</td></tr>'
        for row in figures["to_check"][:CONFUSIONS_SHOWN]
    )
    return (
        text + '<h3>Pages to check first</h3><table id="to-check"><tr><th>page</th><th>mean confidence</th>'
        f"<th>edits</th><th>CER</th></tr>{rows}</table>"
    )


def render_report(
    comparison: Comparison,
    pictures: list[str],
    picture_ids: dict[str, int],
    title: str = "Base vs fine-tuned",
    charts: str = "",
    figures: dict[str, Any] | None = None,
) -> str:
    """The whole report as an HTML document; `charts` is trusted markup (the training view's SVG);
    `figures` are `report_data.analysis` (computed here when not given)."""
    figures = figures if figures is not None else analysis(comparison)
    counts = (
        f'<p>{len(comparison.changes)} shared samples: <span class="better">{len(comparison.improved)} improved</span>, '
        f'<span class="worse">{len(comparison.regressed)} regressed</span>, {comparison.unchanged} unchanged; '
        f"{len(comparison.still_wrong)} still wrong after fine-tuning"
        + (
            f"; {comparison.only_base} only in base, {comparison.only_tuned} only in fine-tuned"
            if comparison.only_base or comparison.only_tuned
            else ""
        )
        + "</p>"
    )
    confusions = (
        '<h2>Character confusions</h2><p class="muted">expected \u2192 read, over every shared sample; '
        '(none) is a character missing from the reading or extra in it.</p><div class="charts">'
        + _confusion_table("fine-tuned", comparison.confusions("tuned"), "confusions-tuned")
        + _confusion_table("base", comparison.confusions("base"), "confusions-base")
        + "</div>"
    )
    training = f'<h2>Training</h2><div class="charts">{charts}</div>' if charts else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>\n{_asset('report.css')}</style></head><body><h1>{escape(title)}</h1>"
        + training
        + "<h2>Run</h2>"
        + _run_table(comparison)
        + "<h2>Held-out scores</h2>"
        + _totals_table(comparison)
        + _interval(figures["cer_change"])
        + counts
        + _paper_table(figures["paper"])
        + _datasets_table(comparison)
        + '<h2>Where the errors are</h2><div class="charts">'
        + _breakdown(
            "CER by character class",
            "by-class",
            "class",
            "reference_chars",
            figures["by_class"]["base"],
            figures["by_class"]["tuned"],
        )
        + _breakdown(
            "CER by page length",
            "by-length",
            "reference characters",
            "pages",
            figures["by_length"]["base"],
            figures["by_length"]["tuned"],
        )
        + "</div><h2>Runaway pages and confidence</h2>"
        + _failures_and_confidence(figures, comparison)
        + confusions
        + _sample_section(comparison, pictures, picture_ids)
        + f"<script>\n{_asset('report.js')}</script></body></html>\n"
    )
