"""Page images embedded in a report as data URIs, within a size budget, the pages that matter most
first, so a report of thousands of samples stays a file a browser opens."""

from __future__ import annotations

import base64
import io

from got_lightning.evaluation.thumbnails import LONG_SIDE, page_thumbnail
from got_lightning.reports.comparison import Comparison, SampleChange

QUALITY = 75


def data_uri(path: str | None, long_side: int = LONG_SIDE) -> str | None:
    """A JPEG of the page, its long side at most `long_side`, as a data URI; None when unreadable."""
    image = page_thumbnail(path, long_side)
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def priority(comparison: Comparison) -> list[SampleChange]:
    """Still wrong (worst first), then regressed, improved, and the rest."""
    ordered, seen = [], set()
    for change in [*comparison.still_wrong, *comparison.regressed, *comparison.improved, *comparison.changes]:
        if change.image not in seen:
            seen.add(change.image)
            ordered.append(change)
    return ordered


def embed(comparison: Comparison, budget_mb: float) -> tuple[list[str], dict[str, int]]:
    """Data URIs in priority order until `budget_mb` is spent, and each embedded image's number."""
    budget, uris, ids = budget_mb * 2**20, [], {}
    for change in priority(comparison):
        uri = data_uri(change.image_path)
        if uri is None:
            continue
        if len(uri) > budget:
            break
        budget -= len(uri)
        ids[change.image] = len(uris)
        uris.append(uri)
    return uris, ids
