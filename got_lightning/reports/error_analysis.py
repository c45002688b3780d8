"""Where a model's errors live and how sure a change is: CER by character class and by page length,
a seeded paired bootstrap of the change in CER, and how well the model's confidence picks out its
wrong pages. Torch-free (numpy), for `compare` and `report`."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

CHARACTER_CLASSES = ("CJK ideographs", "other letters", "digits", "punctuation", "whitespace", "line breaks", "other")
LENGTH_EDGES = (100, 300, 1000, 3000)  # reference characters
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))


def character_class(char: str) -> str:
    """CJK ideographs (unified, extensions, compatibility), other letters, digits (every Unicode
    number), punctuation, whitespace, line breaks, or other (symbols, marks)."""
    if char in "\n\r":
        return "line breaks"
    if char.isspace():
        return "whitespace"
    point = ord(char)
    if any(low <= point <= high for low, high in _CJK_RANGES):
        return "CJK ideographs"
    category = unicodedata.category(char)
    if category.startswith("L"):
        return "other letters"
    if category.startswith("N"):
        return "digits"
    if category.startswith("P"):
        return "punctuation"
    return "other"


def cer_by_class(samples: Iterable[tuple[str, list[tuple[str, str]]]]) -> dict[str, dict[str, Any]]:
    """Per class: its reference characters, the edits that touch it (a substitution or deletion of
    one of its reference characters, an insertion of one of its characters) and their ratio.
    `samples`: (reference, edit pairs as `comparison.edit_pairs` gives them)."""
    characters = dict.fromkeys(CHARACTER_CLASSES, 0)
    edits = dict.fromkeys(CHARACTER_CLASSES, 0)
    for reference, pairs in samples:
        for char in reference:
            characters[character_class(char)] += 1
        for expected, read in pairs:
            edits[character_class(expected or read)] += 1
    return {
        name: {
            "reference_chars": characters[name],
            "edits": edits[name],
            "cer": edits[name] / characters[name] if characters[name] else None,
        }
        for name in CHARACTER_CLASSES
        if characters[name] or edits[name]
    }


def length_band(reference_chars: int, edges: Sequence[int] = LENGTH_EDGES) -> str:
    low = 0
    for edge in edges:
        if reference_chars < edge:
            return f"{low}-{edge - 1}"
        low = edge
    return f"{low}+"


def cer_by_length(samples: Iterable[tuple[int, int]], edges: Sequence[int] = LENGTH_EDGES) -> dict[str, dict[str, Any]]:
    """Per band of reference length: pages, their edits and characters, and the band's CER.
    `samples`: (edits, reference characters)."""
    bands: dict[str, dict[str, Any]] = {}
    for edits, characters in samples:
        band = bands.setdefault(length_band(characters, edges), {"pages": 0, "edits": 0, "reference_chars": 0})
        band["pages"] += 1
        band["edits"] += edits
        band["reference_chars"] += characters
    order = [length_band(edge - 1, edges) for edge in edges] + [length_band(edges[-1], edges)]
    return {
        name: {**bands[name], "cer": bands[name]["edits"] / max(bands[name]["reference_chars"], 1)}
        for name in order
        if name in bands
    }


def paired_bootstrap(
    base_edits: Sequence[int], tuned_edits: Sequence[int], reference_chars: Sequence[int], resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The change in corpus CER (tuned - base) with a 95% percentile interval from resampling the
    pages with replacement (both models on the same draw), and the share of resamples whose change
    has the other sign than the observed one."""
    base, tuned, characters = (np.asarray(values, dtype=np.int64) for values in (base_edits, tuned_edits, reference_chars))
    count = len(characters)
    observed = (tuned.sum() - base.sum()) / max(int(characters.sum()), 1)
    rng = np.random.default_rng(seed)
    changes = np.empty(resamples)
    step = max(1, 2_000_000 // max(count, 1))  # resamples per draw, to bound the index array's memory
    for start in range(0, resamples, step):
        draw = rng.integers(0, count, size=(min(step, resamples - start), count))
        changes[start : start + len(draw)] = (tuned[draw].sum(1) - base[draw].sum(1)) / np.maximum(characters[draw].sum(1), 1)
    low, high = np.percentile(changes, [2.5, 97.5])
    other_sign = float(np.mean(np.sign(changes) != np.sign(observed))) if observed else float(np.mean(changes != 0))
    return {
        "cer_change": float(observed),
        "low": float(low),
        "high": float(high),
        "other_sign_share": other_sign,
        "resamples": resamples,
        "seed": seed,
    }


def confidence_separation(samples: Sequence[tuple[float | None, int, int]], share: float = 0.1) -> dict[str, Any] | None:
    """How well confidence finds the wrong pages: the CER of the least confident `share` of the
    pages against the CER of the rest, and the share of wrong pages among each. `samples`:
    (mean confidence, edits, reference characters); None when no page has a confidence."""
    known = sorted((sample for sample in samples if sample[0] is not None), key=lambda sample: sample[0])
    if len(known) < 2:
        return None
    cut = max(1, round(len(known) * share))
    least, rest = known[:cut], known[cut:]

    def cer(group: list[tuple[float | None, int, int]]) -> float:
        return sum(edits for _, edits, _ in group) / max(sum(characters for _, _, characters in group), 1)

    def wrong(group: list[tuple[float | None, int, int]]) -> float:
        return sum(1 for _, edits, _ in group if edits) / len(group)

    return {
        "pages": len(known),
        "least_confident": cut,
        "least_confident_cer": cer(least),
        "rest_cer": cer(rest),
        "least_confident_wrong_share": wrong(least),
        "rest_wrong_share": wrong(rest),
    }
