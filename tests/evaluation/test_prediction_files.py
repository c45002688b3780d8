"""The files a `predict` rerun continues: torn lines, one line per input, input order, settings."""

import json

import pytest

from got_lightning.evaluation.prediction_files import (
    PredictionFiles,
    PredictSettingsError,
    open_for_append,
    read_complete_lines,
)


def write(path, *lines, tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail, encoding="utf-8")


def test_a_torn_last_line_is_cut_before_appending_and_a_whole_one_keeps_its_newline(tmp_path):
    torn, whole = tmp_path / "torn.jsonl", tmp_path / "whole.jsonl"
    write(torn, {"image": "a", "prediction": "1"}, tail='{"image": "b", "predic')
    write(whole, {"image": "a", "prediction": "1"}, tail='{"image": "b", "prediction": "2"}')
    assert [line["image"] for line in read_complete_lines(torn)] == ["a"]
    for path in (torn, whole):
        with open_for_append(path) as handle:
            handle.write(json.dumps({"image": "c", "prediction": "3"}) + "\n")
    assert [line["image"] for line in read_complete_lines(torn)] == ["a", "c"]
    assert [line["image"] for line in read_complete_lines(whole)] == ["a", "b", "c"]


def test_parts_merge_into_input_order_with_each_input_once(tmp_path):
    files = PredictionFiles(tmp_path / "predictions.jsonl")
    write(files.path, {"image": "p2", "prediction": "two"})
    write(files.part(0), {"image": "p0", "prediction": "zero"}, {"image": "p3", "error": "unreadable"})
    write(files.part(1), {"image": "p1", "prediction": "one"}, {"image": "p3", "prediction": "three"}, tail='{"ima')
    write(files.part(2), {"image": "gone", "prediction": "?"}, {"image": "p2", "prediction": "again"})
    assert files.done() == {"p0", "p1", "p2", "p3", "gone"}
    assert files.merge(["p0", "p1", "p2", "p3"]) == 5
    lines = read_complete_lines(files.path)
    assert [(line["image"], line.get("prediction")) for line in lines] == [
        ("p0", "zero"),
        ("p1", "one"),
        ("p2", "two"),
        ("p3", "three"),  # an answer wins over an error line for the same input
        ("gone", "?"),  # inputs no longer listed stay, after the others
    ]
    assert not files.parts.exists()


def test_annotation_lines_are_keyed_by_position_and_errors_can_be_retried(tmp_path):
    files = PredictionFiles(tmp_path / "predictions.jsonl")
    write(files.path, {"image": "same.png", "position": 0, "prediction": "a"}, {"image": "same.png", "position": 1, "error": "x"})
    assert files.done() == {0, 1}
    assert files.done(retry_errors=True) == {0}


def test_other_settings_are_refused_with_what_changed(tmp_path):
    files = PredictionFiles(tmp_path / "predictions.jsonl")
    settings = {"checkpoint": "a.ckpt", "generation": {"max_new_tokens": 8}}
    files.write_settings(settings)
    files.check_settings(settings)  # nothing written yet: anything goes
    write(files.path, {"image": "p0", "prediction": "zero"})
    files.check_settings(settings)
    with pytest.raises(PredictSettingsError, match=r"checkpoint: 'a.ckpt' -> 'b.ckpt'.*--predict_output.overwrite"):
        files.check_settings({**settings, "checkpoint": "b.ckpt"})
    files.clear()
    assert not files.path.exists() and not files.settings_path.exists()
