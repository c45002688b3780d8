"""Empty or useless data is an error before the first step, not a run that trains nothing and exits 0;
`data check` and `predict` say so too."""

from __future__ import annotations

import json

import pytest

from got_lightning.cli import main
from tests.training_helpers import fit_config


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


CASES = {
    "zero-byte file": (lambda d: write(d / "a.jsonl", ""), "no train sample of 0 record(s)"),
    "a JSON object": (
        lambda d: write(d / "a.json", '{"images": [], "note": "not a list"}'),
        "1 x record has no 'image' or 'conversations'",
    ),
    "no gpt turn": (
        lambda d: write(
            d / "a.jsonl", json.dumps({"image": "p.png", "conversations": [{"from": "human", "value": "<image>\nOCR: "}]}) + "\n"
        ),
        "conversation ends with a human turn that has no answer",
    ),
    "every image missing": (
        lambda d: write(
            d / "a.jsonl",
            "".join(
                json.dumps(
                    {
                        "image": f"gone/{i}.png",
                        "conversations": [{"from": "human", "value": "<image>\nOCR: "}, {"from": "gpt", "value": "12"}],
                    }
                )
                + "\n"
                for i in range(6)
            ),
        ),
        "x image file not found",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_on_data_with_nothing_to_learn_stops_before_the_first_step(case, micro_model_dir, digit_pages, tmp_path, capsys):
    make, reason = CASES[case]
    annotations = make(tmp_path)
    config = fit_config(
        tmp_path / "c.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / "run",
        data={"datasets": [{"name": "d", "annotations": str(annotations)}], "val_fraction": 0.0},
    )
    assert main(["fit", "--config", str(config)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("got-lightning: error: nothing to train on") and reason in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_every_answer_over_the_length_limit_is_nothing_to_learn(micro_model_dir, digit_pages, tmp_path, capsys):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run", data={"model_max_length": 8})
    assert main(["fit", "--config", str(config)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "nothing to train on" in line and "x over-length" in line


def test_data_check_fails_when_no_record_is_good_and_tells_a_folder_from_a_missing_path(micro_model_dir, tmp_path, capsys):
    empty = write(tmp_path / "empty.jsonl", "")
    assert main(["data", "check", "--annotations", str(empty), "--model_path", str(micro_model_dir)]) == 1
    assert "no good record" in capsys.readouterr().out
    folder = tmp_path / "folder"
    folder.mkdir()
    for kind in ("auto", "got"):
        assert main(["data", "check", "--annotations", str(folder), "--format", kind, "--model_path", str(micro_model_dir)]) == 2
        error = capsys.readouterr().err
        assert f"folder {folder}" in error or f"{folder} is a folder" in error
        assert "does not exist" not in error
    assert main(["data", "check", "--annotations", str(tmp_path / "missing.jsonl"), "--model_path", str(micro_model_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_predict_with_no_input_image_says_so(micro_model_dir, digit_pages, tmp_path, capsys):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    empty = tmp_path / "inbox"
    empty.mkdir()
    assert main(["predict", "--config", str(config), "--data.predict_input", str(empty)]) == 2
    assert "no image" in capsys.readouterr().err.strip().splitlines()[-1]
