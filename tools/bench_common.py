"""What the benchmark scripts share: the JSON result line and the default generated inputs."""

from __future__ import annotations

import json
from pathlib import Path

from got_lightning.data.synthetic import PageStyle, make_dataset

# The demo's pages: one digit per 64-px cell, 2 to 4 digits.
DIGIT_CELLS = PageStyle(char_width=64, min_chars=2, max_chars=4)


def emit(name: str, ours: float, baseline: float | None, unit: str, ratio: float | None = None, **extra) -> None:
    """One comparison as a JSON line; `ratio` defaults to ours / baseline."""
    if ratio is None and baseline:
        ratio = ours / baseline
    line = {
        "name": name,
        "ours": round(ours, 4),
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if ratio is None else round(ratio, 3),
        "unit": unit,
        **extra,
    }
    print(json.dumps(line))


def generated_pages(folder: Path, count: int, style: PageStyle = DIGIT_CELLS) -> str:
    """Render `count` pages into `folder/pages` (same pages every time); their annotation file."""
    return str(make_dataset(folder / "pages", count, style))
