"""The comparison as one self-contained HTML file: totals, changed samples, diffs and page thumbnails.
Every string from data or predictions is escaped: an OCR'd `<script>` renders as text."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from got_lightning.evaluation.comparison import Comparison, SampleChange, character_diff

THUMBNAIL_SIDE = 320

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.4em 0.6em; vertical-align: top; text-align: left; }
.better { color: #176f2c; } .worse { color: #b3261e; }
.text { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; max-width: 40em; }
.wrong { background: #ffd6d3; } .missing { background: #fff1b8; text-decoration: line-through; }
img { max-width: 320px; border: 1px solid #ddd; }
"""


def thumbnail_uri(path: str | None) -> str | None:
    """A small JPEG of the page as a data URI, or None when it cannot be read."""
    if not path or not Path(path).is_file():
        return None
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE * 2))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def diff_html(prediction: str, reference: str) -> str:
    parts = []
    for segment in character_diff(prediction, reference):
        text = escape(segment.text)
        parts.append(text if segment.kind == "equal" else f'<span class="{segment.kind}">{text}</span>')
    return "".join(parts)


def _totals_table(comparison: Comparison) -> str:
    rows = [
        f"<tr><td>{m.label}</td><td>{m.base:.4f}</td><td>{m.tuned:.4f}</td><td class=\"{m.verdict}\">{m.change:+.4f}</td></tr>"
        for m in comparison.metric_changes()
    ]
    return "<table><tr><th>metric</th><th>base</th><th>fine-tuned</th><th>change</th></tr>" + "".join(rows) + "</table>"


def _sample_rows(changes: list[SampleChange]) -> str:
    rows = []
    for change in changes:
        uri = thumbnail_uri(change.image_path)
        picture = f'<img src="{uri}" alt="{escape(change.image)}">' if uri else "(image not found)"
        css = "better" if change.cer_change < 0 else "worse"
        rows.append(
            "<tr>"
            f"<td>{picture}<br>{escape(change.image)}</td>"
            f"<td class=\"{css}\">{change.base_score.cer:.3f} &rarr; {change.tuned_score.cer:.3f}</td>"
            f"<td><div class=\"text\">{escape(change.reference)}</div></td>"
            f"<td><div class=\"text\">{diff_html(change.base, change.reference)}</div></td>"
            f"<td><div class=\"text\">{diff_html(change.tuned, change.reference)}</div></td>"
            "</tr>"
        )
    header = "<tr><th>page</th><th>CER</th><th>reference</th><th>base</th><th>fine-tuned</th></tr>"
    return "<table>" + header + "".join(rows) + "</table>"


def render_report(comparison: Comparison, top: int) -> str:
    """The whole report as an HTML document."""
    improved, regressed = comparison.improved, comparison.regressed
    counts = (
        f"<p>{len(comparison.changes)} shared samples: <span class=\"better\">{len(improved)} improved</span>, "
        f"<span class=\"worse\">{len(regressed)} regressed</span>, {comparison.unchanged} unchanged"
        + (f"; {comparison.only_base} only in base, {comparison.only_tuned} only in fine-tuned" if comparison.only_base or comparison.only_tuned else "")
        + "</p>"
    )
    legend = '<p><span class="wrong">wrong</span> characters, <span class="missing">missing</span> characters, against the reference.</p>'
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>GOT fine-tuning comparison</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>Base vs fine-tuned</h1>"
        f"<p>base: {escape(comparison.base_file)}<br>fine-tuned: {escape(comparison.tuned_file)}</p>"
        + _totals_table(comparison) + counts + legend
        + f"<h2>Top {min(top, len(improved))} improvements</h2>" + _sample_rows(improved[:top])
        + f"<h2>Top {min(top, len(regressed))} regressions</h2>" + _sample_rows(regressed[:top])
        + "</body></html>\n"
    )
