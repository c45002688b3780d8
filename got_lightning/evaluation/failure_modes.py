"""GOT's best-known failure, a page that loops until the token limit: the rule that calls an answer
repeating, and the counts and warning an evaluation reports."""

from __future__ import annotations

from typing import Any

MIN_REPEATS = 3
MIN_SPAN = 32
MAX_UNIT = 200
TRUNCATION_WARNING_SHARE = 0.01


def loop_at_end(text: str, min_repeats: int = MIN_REPEATS, min_span: int = MIN_SPAN, max_unit: int = MAX_UNIT) -> str | None:
    """The unit an answer ends by repeating, or None.

    The rule: after trailing whitespace, the text ends with one unit of 1 to `max_unit` characters
    repeated back to back at least `min_repeats` times (the last copy may be cut short, as
    generation stops mid-unit at the token limit), the repeated stretch at least `min_span`
    characters long. The shortest such unit is returned.
    """
    text = text.rstrip()
    length = len(text)
    for unit in range(1, min(max_unit, length // min_repeats) + 1):
        run = 0  # how far back each character equals the one a unit before it
        while run < length - unit and text[length - 1 - run] == text[length - 1 - run - unit]:
            run += 1
        span = run + unit
        if span >= min_repeats * unit and span >= min_span:
            return text[length - span : length - span + unit]
    return None


def failure_counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    """How many scored pages stopped at the token limit, and how many end in a loop."""
    scored = len(records)
    truncated = sum(bool(record.get("truncated")) for record in records)
    repeating = sum(bool(record.get("repetition")) for record in records)
    return {
        "num_truncated": truncated,
        "num_repetition": repeating,
        "truncated_share": truncated / scored if scored else None,
        "repetition_share": repeating / scored if scored else None,
    }


def truncation_warning(counts: dict[str, Any], max_new_tokens: int | None) -> str | None:
    """One line when more than 1% of the pages stopped at the token limit."""
    share = counts.get("truncated_share")
    if not share or share <= TRUNCATION_WARNING_SHARE:
        return None
    limit = f" ({max_new_tokens} tokens)" if max_new_tokens else ""
    return (
        f"warning: {counts['num_truncated']} held-out page(s) ({share:.1%}) stopped at max_new_tokens{limit}, "
        f"{counts['num_repetition']} of all pages ending in a loop: look at their 'truncated' and 'repetition' lines, "
        "and raise model.generation.max_new_tokens if the pages are longer than the limit"
    )
