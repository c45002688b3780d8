"""Where errors live and how sure a change is: CER by character class and page length, the paired
bootstrap, confidence against errors, and the runaway-page rule; then all of it through `compare`."""

import json

import numpy as np
import pytest

from got_lightning.cli import main
from got_lightning.evaluation.failure_modes import loop_at_end
from got_lightning.reports.comparison import edit_pairs
from got_lightning.reports.error_analysis import (
    cer_by_class,
    cer_by_length,
    character_class,
    confidence_separation,
    paired_bootstrap,
)
from tests.reports.test_comparison import row, write_predictions


def test_character_classes():
    assert [character_class(c) for c in "天𠀀a中ß7٣,。 \n$"] == [
        "CJK ideographs",
        "CJK ideographs",
        "other letters",
        "CJK ideographs",
        "other letters",
        "digits",
        "digits",
        "punctuation",
        "punctuation",
        "whitespace",
        "line breaks",
        "other",
    ]


def test_cer_by_class_attributes_each_edit_to_the_character_it_touches():
    reference, prediction = "天地玄黄, 12\nab", "天他玄, 13\nabc"  # 地->他, 黄 missing, 2->3, c extra
    by_class = cer_by_class([(reference, edit_pairs(prediction, reference))])
    assert by_class["CJK ideographs"] == {"reference_chars": 4, "edits": 2, "cer": 0.5}
    assert by_class["digits"] == {"reference_chars": 2, "edits": 1, "cer": 0.5}
    assert by_class["other letters"] == {"reference_chars": 2, "edits": 1, "cer": 0.5}
    assert by_class["punctuation"]["edits"] == by_class["whitespace"]["edits"] == by_class["line breaks"]["edits"] == 0


def test_cer_by_length_bands():
    bands = cer_by_length([(1, 50), (0, 99), (10, 500), (30, 5000)])
    assert bands == {
        "0-99": {"pages": 2, "edits": 1, "reference_chars": 149, "cer": 1 / 149},
        "300-999": {"pages": 1, "edits": 10, "reference_chars": 500, "cer": 10 / 500},
        "3000+": {"pages": 1, "edits": 30, "reference_chars": 5000, "cer": 30 / 5000},
    }


def test_the_bootstrap_is_reproducible_by_seed_and_brackets_the_observed_change():
    rng = np.random.default_rng(1)
    characters = rng.integers(50, 500, 300)
    base = rng.binomial(characters, 0.10)
    tuned = rng.binomial(characters, 0.08)
    first, again, other = (paired_bootstrap(base, tuned, characters, 500, seed) for seed in (7, 7, 8))
    assert first == again and first != other
    assert first["low"] < first["cer_change"] < first["high"] < 0
    assert first["other_sign_share"] == 0.0
    assert first["cer_change"] == pytest.approx((tuned.sum() - base.sum()) / characters.sum())
    mixed = paired_bootstrap(base, rng.binomial(characters, 0.10), characters, 500, 0)
    assert mixed["low"] < 0 < mixed["high"] and 0.05 < mixed["other_sign_share"] < 0.95


def test_confidence_separation_compares_the_least_confident_tenth_with_the_rest():
    samples = [(0.1 + i / 100, 5 if i < 2 else 0, 10) for i in range(20)] + [(None, 1, 10)]
    split = confidence_separation(samples)
    assert split["pages"] == 20 and split["least_confident"] == 2
    assert split["least_confident_cer"] == 0.5 and split["rest_cer"] == 0.0
    assert split["least_confident_wrong_share"] == 1.0 and split["rest_wrong_share"] == 0.0
    assert confidence_separation([(None, 0, 1)]) is None


@pytest.mark.parametrize(
    "text, loops",
    [
        ("the cat sat on the mat.\n" * 2 + "the cat s", False),  # two copies: not yet a loop
        ("Intro.\n" + "第一章 天地玄黄\n" * 6 + "第一章 天", True),  # cut mid-unit at the token limit
        ("0" * 40, True),
        ("ha" * 10, False),  # 20 characters: shorter than the rule's span
        ("a normal page of text that ends with a full stop.", False),
        ("| a | b |\n" + "|---|---|\n" * 4, True),
    ],
)
def test_the_loop_rule(text, loops):
    assert (loop_at_end(text) is not None) == loops


def test_compare_reports_the_paper_metrics_interval_breakdowns_failures_and_pages_to_check(tmp_path, capsys):
    loop = "第一章 天地玄黄\n" * 8
    base = write_predictions(
        tmp_path / "base.jsonl",
        [
            {**row("a.png", "天地玄黄宇宙洪荒", "天他玄黄宇宙洪"), "confidence": {"mean": 0.4, "min": 0.1}},
            {**row("b.png", "page two 12", loop), "truncated": True, "confidence": {"mean": 0.9, "min": 0.5}},
            {**row("c.png", "line three", "line three"), "confidence": {"mean": 0.95, "min": 0.9}},
        ],
    )
    tuned = write_predictions(
        tmp_path / "tuned.jsonl",
        [
            {**row("a.png", "天地玄黄宇宙洪荒", "天地玄黄宇宙洪荒"), "confidence": {"mean": 0.97, "min": 0.9}},
            {**row("b.png", "page two 12", "page two 13"), "confidence": {"mean": 0.5, "min": 0.2}},
            {**row("c.png", "line three", "line three"), "confidence": {"mean": 0.99, "min": 0.95}},
        ],
    )
    html = tmp_path / "report.html"
    assert main(["compare", str(base), str(tuned), "--html", str(html)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(html.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["paper"]["tuned"]["num_scored"] == 3 and data["paper"]["tuned"]["edit_dist"] < data["paper"]["base"]["edit_dist"]
    assert data["cer_change"]["cer_change"] < 0 and data["cer_change"]["seed"] == 0
    assert data["by_class"]["tuned"]["digits"]["edits"] == 1 and data["by_class"]["tuned"]["CJK ideographs"]["edits"] == 0
    assert data["by_class"]["base"]["CJK ideographs"]["edits"] > 2  # the looping page read characters that are not there
    assert data["failures"]["base"]["num_truncated"] == 1 and data["failures"]["base"]["num_repetition"] == 1
    assert data["failures"]["tuned"]["num_truncated"] == 0
    assert [page["image"] for page in data["to_check"]] == ["b.png", "a.png", "c.png"]
    assert "95% interval" in printed and "the GOT paper's metrics" in printed and "pages to check first" in printed
    page = html.read_text(encoding="utf-8")
    for element in ('id="paper"', 'id="cer-interval"', 'id="by-class"', 'id="by-length"', 'id="to-check"', 'value="truncated"'):
        assert element in page
