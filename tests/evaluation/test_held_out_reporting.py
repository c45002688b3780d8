"""What validation could not score is counted and named; nothing scored is an error, never a CER of
0 on 0 samples; the scored reference is the annotation's text as written."""

import csv
import json
import shutil

from got_lightning.cli import main
from got_lightning.evaluation.results import read_predictions
from tests.helpers import record, run_executable, write_json
from tests.training_helpers import fit_config


def held_out_config(tmp_path, pages, model_dir, name, val_annotations, data=None, **sections):
    dataset = {
        "name": "digits",
        "annotations": str(pages / "data.json"),
        "val_annotations": str(val_annotations),
        "val_image_root": str(pages),
    }
    sections.setdefault("trainer", {})["limit_val_batches"] = 1.0
    return fit_config(
        tmp_path / f"{name}.yaml",
        pages,
        model_dir,
        tmp_path / name,
        data={"datasets": [dataset], "val_fraction": 0.0, **(data or {})},
        **sections,
    )


def unreadable_held_out(pages, tmp_path):
    """Every page of the set, named under a folder that does not exist (as with a wrong image_root)."""
    records = json.loads((pages / "data.json").read_text(encoding="utf-8"))
    return write_json(tmp_path / "val.json", [dict(r, image=f"elsewhere/{r['image']}") for r in records])


def test_validate_with_no_readable_held_out_image_stops_with_the_reasons(micro_model_dir, digit_pages, tmp_path):
    config = held_out_config(tmp_path, digit_pages, micro_model_dir, "run", unreadable_held_out(digit_pages, tmp_path))
    result = run_executable("validate", "--config", str(config))
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("got-lightning: error:")]
    assert len(error) == 1 and "no held-out sample could be scored: 24 skipped (24 x image file not found)" in error[0]
    assert "Traceback" not in result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["cer"] is None and metrics["num_samples"] == 0 and metrics["num_skipped"] == 24
    assert [problem["index"] for problem in metrics["skipped"]] == list(range(24))
    assert all(problem["dataset"] == "digits/val" and problem["image"].startswith("elsewhere/") for problem in metrics["skipped"])


def test_partly_unreadable_held_out_split_says_how_many_of_how_many_were_scored(micro_model_dir, digit_pages, tmp_path):
    pages = tmp_path / "pages"
    shutil.copytree(digit_pages, pages)
    records = json.loads((pages / "data.json").read_text(encoding="utf-8"))[:6]
    (pages / records[1]["image"]).write_bytes(b"")
    (pages / records[4]["image"]).unlink()
    held_out = write_json(pages / "val.json", records + [{"image": "x.png"}])
    config = held_out_config(tmp_path, pages, micro_model_dir, "run", held_out)
    result = run_executable("validate", "--config", str(config))
    assert result.returncode == 0, result.stderr[-2000:]
    printed = " ".join(result.stdout.split())
    assert "on 4 of 7 samples; 3 skipped:" in printed
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_samples"] == 4 and metrics["num_held_out"] == 7
    reasons = {problem["index"]: problem["reason"] for problem in metrics["skipped"]}
    assert sorted(reasons) == [1, 4, 6]
    assert "empty" in reasons[1] and "not found" in reasons[4] and "conversations" in reasons[6]


def test_fit_says_loudly_when_nothing_was_scored_and_keeps_no_best_checkpoint(micro_model_dir, digit_pages, tmp_path):
    config = held_out_config(
        tmp_path,
        digit_pages,
        micro_model_dir,
        "run",
        unreadable_held_out(digit_pages, tmp_path),
        trainer={
            "val_check_interval": 2,
            "check_val_every_n_epoch": None,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path / "logs")}},
            "log_every_n_steps": 1,
        },
    )
    result = run_executable("fit", "--config", str(config), "--trainer.max_steps", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "held-out CER: no sample scored, 24 skipped (24 x image file not found)" in " ".join(result.stdout.split())
    assert "after training not scored" in result.stdout
    assert not list((tmp_path / "run" / "checkpoints").glob("best-*"))
    rows = list(csv.DictReader((next((tmp_path / "logs").rglob("metrics.csv"))).open(encoding="utf-8")))
    assert [row["val/cer"] for row in rows if row.get("val/cer")] == ["nan"]


def test_train_skipped_samples_counts_every_micro_batch(micro_model_dir, digit_pages, tmp_path):
    pages = tmp_path / "pages"
    shutil.copytree(digit_pages, pages)
    records = json.loads((pages / "data.json").read_text(encoding="utf-8"))
    for broken in (0, 5, 9, 14, 20):
        (pages / records[broken]["image"]).write_bytes(b"not an image")
    config = fit_config(
        tmp_path / "c.yaml",
        pages,
        micro_model_dir,
        tmp_path / "run",
        data={"val_fraction": 0.0},
        model={"lr_schedule_steps": 10},
        trainer={
            "accumulate_grad_batches": 3,
            "max_epochs": 1,
            "max_steps": -1,
            "log_every_n_steps": 1,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path / "logs")}},
        },
    )
    assert main(["fit", "--config", str(config)]) == 0
    rows = list(csv.DictReader((next((tmp_path / "logs").rglob("metrics.csv"))).open(encoding="utf-8")))
    assert sum(float(row["train/skipped_samples"]) for row in rows if row.get("train/skipped_samples")) == 5


def test_reference_raw_is_the_annotation_text_as_written(micro_model_dir, digit_pages, tmp_path):
    records = json.loads((digit_pages / "data.json").read_text(encoding="utf-8"))[:3]
    texts = ["cafe\u0301 <box>12</box>", "e\u0301\u0301 <ref>x</ref>\n2", "7" * 400]  # decomposed accents, box tags, over-length
    held_out = write_json(tmp_path / "val.json", [record(r["image"], text) for r, text in zip(records, texts)])
    config = held_out_config(
        tmp_path, digit_pages, micro_model_dir, "run", held_out, data={"model_max_length": 300, "overlength": "truncate"}
    )
    assert main(["validate", "--config", str(config)]) == 0
    scored = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert [line["reference_raw"] for line in scored] == texts
    assert [line["reference"] for line in scored] == [text.strip() for text in texts]
    assert scored[2]["reference_chars"] == 400
