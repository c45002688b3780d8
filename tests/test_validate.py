"""`got-lightning validate` on the micro model: result files, their consistency, batching, DDP."""

import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from got_lightning.cli import main
from got_lightning.evaluation.results import read_predictions
from tests.helpers import REPO_ROOT
from tests.training_helpers import fit_config


def levenshtein(a: str, b: str) -> int:
    """Textbook dynamic programme, independent of the code under test."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def validate_config(tmp_path: Path, pages: Path, model_dir: Path, root: Path, **sections) -> Path:
    sections.setdefault("trainer", {})["limit_val_batches"] = 1.0
    sections["trainer"].setdefault("logger", False)
    return fit_config(tmp_path / f"{root.name}.yaml", pages, model_dir, root, **sections)


def test_validate_writes_predictions_whose_edits_give_the_printed_cer(micro_model_dir, digit_pages, tmp_path, capsys):
    root = tmp_path / "run"
    config = validate_config(tmp_path, digit_pages, micro_model_dir, root)
    assert main(["validate", "--config", str(config)]) == 0
    printed = capsys.readouterr().out

    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    records = read_predictions(root / "predictions.jsonl")
    assert metrics["num_samples"] == len(records) > 0
    assert {"image", "reference", "prediction", "cer"} <= set(records[0])
    edits = sum(levenshtein(r["prediction"], r["reference"]) for r in records)
    characters = sum(len(r["reference"]) for r in records)
    assert metrics["cer"] == pytest.approx(edits / characters)
    assert re.search(r"held-out CER (\d+\.\d+)", printed).group(1) == f"{edits / characters:.4f}"
    assert str(root / "predictions.jsonl") in printed.replace("\n", "")
    for record in records:
        assert record["cer"] == pytest.approx(levenshtein(record["prediction"], record["reference"]) / len(record["reference"]))
        assert (digit_pages / record["image"]).is_file()
    assert {"cer", "edit_distance", "f1", "exact_match", "num_samples", "normalization"} <= set(metrics)


def test_predictions_are_identical_at_eval_batch_1_and_8(image_sensitive_model_dir, digit_pages, tmp_path):
    predictions = {}
    for batch_size in (1, 8):
        root = tmp_path / f"batch{batch_size}"
        config = validate_config(tmp_path, digit_pages, image_sensitive_model_dir, root, data={"val_fraction": 0.5})
        assert main(["validate", "--config", str(config), "--data.eval_batch_size", str(batch_size)]) == 0
        predictions[batch_size] = [
            (r["image"], r["prediction_raw"], r["new_tokens"], r["truncated"], r["confidence"])
            for r in read_predictions(root / "predictions.jsonl")
        ]
    assert [line[:4] for line in predictions[1]] == [line[:4] for line in predictions[8]]
    for alone, batched in zip(predictions[1], predictions[8]):  # the same probabilities, up to float rounding
        assert alone[4]["mean"] == pytest.approx(batched[4]["mean"], rel=1e-4)
        assert alone[4]["min"] == pytest.approx(batched[4]["min"], rel=1e-4)
    assert len({line[1] for line in predictions[1]}) > 1, "a model that answers everything alike proves nothing"


def test_validate_reports_the_papers_metrics_and_pages_that_hit_the_token_limit(micro_model_dir, digit_pages, tmp_path, capsys):
    root = tmp_path / "run"
    config = validate_config(tmp_path, digit_pages, micro_model_dir, root)
    assert main(["validate", "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    records = read_predictions(root / "predictions.jsonl")
    # The random micro model never stops: every page runs to max_new_tokens (10).
    assert all(
        r["truncated"] and r["new_tokens"] == 10 and 0 < r["confidence"]["min"] <= r["confidence"]["mean"] for r in records
    )
    assert metrics["num_truncated"] == len(records) and metrics["truncated_share"] == 1.0
    assert metrics["num_repetition"] == sum(r["repetition"] for r in records)
    paper = metrics["paper"]
    assert {"bleu", "meteor", "f_measure", "precision", "recall", "edit_dist", "num_scored"} <= set(paper)
    assert paper["num_scored"] == sum(r["paper"] is not None for r in records)
    assert "GOT paper's metrics: bleu" in printed
    # Each line whole, however narrow the console (here a pipe's 80 columns): a path stays copyable
    # and a log stays searchable.
    lines = [line.strip() for line in printed.splitlines()]
    assert f"predictions: {root / 'predictions.jsonl'}" in lines and len(str(root / "predictions.jsonl")) > 80
    assert any(re.match(r"held-out CER [\d.]+ on \d+ of \d+ samples .*exact [\d.]+\)$", line) for line in lines)
    assert any(
        re.match(r"warning: \d+ held-out page\(s\) \(100\.0%\) stopped at max_new_tokens \(10 tokens\)", line) for line in lines
    )


def test_normalization_is_applied_to_both_sides_and_recorded(micro_model_dir, digit_pages, tmp_path):
    root = tmp_path / "run"
    config = validate_config(tmp_path, digit_pages, micro_model_dir, root)
    assert (
        main(
            [
                "validate",
                "--config",
                str(config),
                "--model.normalization.remove_whitespace",
                "true",
                "--model.normalization.nfkc",
                "true",
            ]
        )
        == 0
    )
    records = read_predictions(root / "predictions.jsonl")
    for record in records:
        assert not any(c.isspace() for c in record["prediction"] + record["reference"])
        assert record["prediction"] == "".join(unicodedata.normalize("NFKC", record["prediction_raw"]).split())
        assert record["reference"] == "".join(unicodedata.normalize("NFKC", record["reference_raw"]).split())
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["normalization"]["remove_whitespace"] is True
    assert metrics["normalization"]["nfkc"] is True


def test_fit_validates_per_step_and_keeps_the_best_checkpoint(micro_model_dir, digit_pages, tmp_path):
    root = tmp_path / "run"
    config = validate_config(
        tmp_path, digit_pages, micro_model_dir, root, trainer={"val_check_interval": 2, "check_val_every_n_epoch": None}
    )
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "4"]) == 0
    for step in (2, 4):
        assert (root / "validation" / f"step-{step:06d}" / "predictions.jsonl").is_file()
    best = list((root / "checkpoints").glob("best-step=*-cer=*.ckpt"))
    assert len(best) == 1
    cers = {step: json.loads((root / "validation" / f"step-{step:06d}" / "metrics.json").read_text())["cer"] for step in (2, 4)}
    best_step = min(cers, key=lambda step: (cers[step], step))
    assert best[0].name.startswith(f"best-step={best_step}-cer={cers[best_step]:.4f}")


@pytest.mark.slow
def test_ddp_with_two_processes_gives_the_single_process_metrics(image_sensitive_model_dir, digit_pages, tmp_path):
    # 13 held-out pages: rank 0 gets 7 (batches of 2, 2, 2, 1), rank 1 gets 6 (2, 2, 2).
    single_root, ddp_root = tmp_path / "single", tmp_path / "ddp"
    data = {"eval_batch_size": 2, "val_fraction": 0.5}
    single = validate_config(tmp_path, digit_pages, image_sensitive_model_dir, single_root, data=data)
    ddp = validate_config(tmp_path, digit_pages, image_sensitive_model_dir, ddp_root, data=dict(data))
    assert main(["validate", "--config", str(single)]) == 0
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "got_lightning.cli",
            "validate",
            "--config",
            str(ddp),
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = json.loads((single_root / "metrics.json").read_text(encoding="utf-8"))
    measured = json.loads((ddp_root / "metrics.json").read_text(encoding="utf-8"))
    for name in ("cer", "edit_distance", "f1", "exact_match", "num_samples", "edits", "reference_chars"):
        assert measured[name] == pytest.approx(expected[name]), name
    assert read_predictions(ddp_root / "predictions.jsonl") == read_predictions(single_root / "predictions.jsonl")


def test_test_subcommand_evaluates_the_held_out_split_under_test_names(micro_model_dir, digit_pages, tmp_path):
    root = tmp_path / "run"
    config = validate_config(tmp_path, digit_pages, micro_model_dir, root, trainer={"limit_test_batches": 1.0})
    assert main(["test", "--config", str(config)]) == 0
    metrics = json.loads((root / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_samples"] == len(read_predictions(root / "predictions.jsonl")) == 3
