"""`got-lightning compare`: totals, improved/regressed counts, diffs, and an HTML report that escapes."""

import json
import re

import pytest
from PIL import Image

from got_lightning.cli import main
from got_lightning.evaluation.comparison import DiffSegment, character_diff, compare
from tests.test_validate import levenshtein, validate_config


def write_predictions(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def prediction_files(tmp_path):
    page = tmp_path / "page.png"
    Image.new("RGB", (200, 80), "white").save(page)

    def row(image, reference, prediction):
        return {"image": image, "image_path": str(page), "reference": reference, "prediction": prediction}

    base = write_predictions(tmp_path / "base.jsonl", [
        row("a.png", "天地玄黄", "天地"),            # 2 edits -> fixed
        row("b.png", "宇宙洪荒", "宇宙洪荒"),        # right -> broken
        row("c.png", "<b>bold</b>", "<script>alert(1)</script>"),
        row("d.png", "日月", "日月"),                # unchanged
        row("e.png", "only", "in base"),
    ])
    tuned = write_predictions(tmp_path / "tuned.jsonl", [
        row("a.png", "天地玄黄", "天地玄黄"),
        row("b.png", "宇宙洪荒", "宇宙洪"),
        row("c.png", "<b>bold</b>", "<b>bold</b>"),
        row("d.png", "日月", "日月"),
    ])
    return base, tuned


def test_comparison_totals_and_changes(prediction_files):
    comparison = compare(*prediction_files)
    assert len(comparison.changes) == 4 and comparison.only_base == 1 and comparison.only_tuned == 0
    base, tuned = comparison.totals("base"), comparison.totals("tuned")
    reference_chars = 4 + 4 + 11 + 2
    base_edits = 2 + 0 + levenshtein("<script>alert(1)</script>", "<b>bold</b>") + 0
    assert base["cer"] == pytest.approx(base_edits / reference_chars)
    assert tuned["cer"] == pytest.approx(1 / reference_chars)
    assert tuned["exact_match"] == pytest.approx(3 / 4) and base["exact_match"] == pytest.approx(2 / 4)
    assert [c.image for c in comparison.improved] == ["c.png", "a.png"]
    assert [c.image for c in comparison.regressed] == ["b.png"]
    assert comparison.unchanged == 1


def test_character_diff_marks_wrong_and_missing_characters():
    assert character_diff("天x玄", "天地玄黄") == [
        DiffSegment("equal", "天"), DiffSegment("wrong", "x"), DiffSegment("equal", "玄"), DiffSegment("missing", "黄"),
    ]
    assert "".join(s.text for s in character_diff("abc", "abc")) == "abc"


def test_compare_command_prints_and_writes_an_escaped_self_contained_report(prediction_files, tmp_path, capsys):
    report = tmp_path / "report.html"
    assert main(["compare", str(prediction_files[0]), str(prediction_files[1]), "--html", str(report), "--top", "5"]) == 0
    printed = capsys.readouterr().out
    assert "2 improved" in printed and "1 regressed" in printed and "1 unchanged" in printed
    assert "CER" in printed and str(report) in printed.replace("\n", "")

    html = report.read_text(encoding="utf-8")
    assert "<script>" not in html
    text_only = re.sub(r'<span class="(wrong|missing)">|</span>', "", html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text_only
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert html.count("data:image/jpeg;base64,") == 3  # two improvements and one regression, with thumbnails
    assert 'class="missing">洪荒<' not in html and 'class="missing">荒<' in html


def test_different_references_are_refused(prediction_files, tmp_path, capsys):
    rows = [json.loads(line) for line in prediction_files[1].read_text(encoding="utf-8").splitlines()]
    rows[0]["reference"] = "天地"
    other = write_predictions(tmp_path / "other.jsonl", rows)
    assert main(["compare", str(prediction_files[0]), str(other)]) == 2
    assert "different references" in capsys.readouterr().err


def test_compare_after_validating_base_and_trained(micro_model_dir, digit_pages, tmp_path):
    base_config = validate_config(tmp_path, digit_pages, micro_model_dir, tmp_path / "base")
    tuned_config = validate_config(tmp_path, digit_pages, micro_model_dir, tmp_path / "tuned",
                                   model={"learning_rate": 1e-2})
    assert main(["validate", "--config", str(base_config)]) == 0
    assert main(["fit", "--config", str(tuned_config), "--trainer.max_steps", "6", "--trainer.limit_val_batches", "0"]) == 0
    assert main(["validate", "--config", str(tuned_config), "--ckpt_path", str(tmp_path / "tuned" / "checkpoints" / "last.ckpt")]) == 0
    assert main(["compare", str(tmp_path / "base" / "predictions.jsonl"), str(tmp_path / "tuned" / "predictions.jsonl")]) == 0
    assert (tmp_path / "tuned" / "comparison.html").is_file()
