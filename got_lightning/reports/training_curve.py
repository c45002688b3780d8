"""Held-out CER and loss over the steps of a run, read from the `metrics.json` of each validation
(`validation/before-fit/` and `validation/step-NNNNNN/`) and drawn as inline SVG."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from got_lightning.core.run_dir import BEFORE_FIT, STEP_FOLDER, RunDir
from got_lightning.evaluation.results import METRICS_FILE, PREDICTIONS_FILE


@dataclass(frozen=True)
class Validation:
    """One validation of a run: where its files are and what it measured."""

    folder: Path
    step: int
    before_fit: bool
    cer: float | None
    loss: float | None
    num_samples: int

    @property
    def label(self) -> str:
        return "before fit" if self.before_fit else f"step {self.step}"

    @property
    def predictions(self) -> Path:
        return self.folder / PREDICTIONS_FILE


def read_validations(run_dir: str | Path) -> list[Validation]:
    """Every validation of a run that left its files, before-fit first, then by step."""
    root = RunDir(run_dir).validation
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        match = STEP_FOLDER.match(folder.name)
        metrics = folder / METRICS_FILE
        if not (match or folder.name == BEFORE_FIT) or not metrics.is_file():
            continue
        values = json.loads(metrics.read_text(encoding="utf-8"))
        found.append(
            Validation(
                folder,
                int(match.group(1)) if match else 0,
                match is None,
                values.get("cer"),
                values.get("loss"),
                int(values.get("num_samples") or 0),
            )
        )
    return sorted(found, key=lambda v: (not v.before_fit, v.step))


def svg_chart(validations: list[Validation], key: str, title: str, width: int = 460, height: int = 220) -> str:
    """A line chart of `key` (cer or loss) against the step, before-fit at step 0; points without
    a value are left out."""
    points = [(v.step, getattr(v, key), v.label) for v in validations if getattr(v, key) is not None]
    left, right, top, bottom = 56, 16, 28, 36
    body = [f'<text x="{width / 2}" y="18" text-anchor="middle" class="chart-title">{escape(title)}</text>']
    if not points:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no value recorded</text>')
    else:
        steps, values = [p[0] for p in points], [p[1] for p in points]
        low, high = min(0.0, min(values)), max(values) or 1.0
        span_x, span_y = max(max(steps) - min(steps), 1), max(high - low, 1e-12)

        def x(step: float) -> float:
            return left + (step - min(steps)) / span_x * (width - left - right)

        def y(value: float) -> float:
            return height - bottom - (value - low) / span_y * (height - top - bottom)

        for fraction in (0.0, 0.5, 1.0):
            value = low + fraction * span_y
            body.append(
                f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>'
                f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>'
            )
        for step in sorted({steps[0], steps[-1]}):
            body.append(f'<text x="{x(step):.1f}" y="{height - bottom + 16}" text-anchor="middle">{step}</text>')
        body.append(f'<text x="{width / 2}" y="{height - 4}" text-anchor="middle">optimizer step</text>')
        path = " ".join(f"{x(step):.1f},{y(value):.1f}" for step, value, _ in points)
        body.append(f'<polyline points="{path}" class="line"/>')
        for step, value, label in points:
            body.append(
                f'<circle cx="{x(step):.1f}" cy="{y(value):.1f}" r="3.5" class="dot" data-step="{step}">'
                f"<title>{escape(label)}: {escape(key)} {value:.4f}</title></circle>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" data-chart="{escape(key)}">' + "".join(body) + "</svg>"
    )
