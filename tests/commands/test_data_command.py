import json
import subprocess
import sys

import pytest

from tests.helpers import record, text_page, write_json, write_jsonl


def run(*args):
    return subprocess.run([sys.executable, "-m", "got_lightning.cli", *args], capture_output=True, text=True, timeout=300)


def test_data_check_json_lists_every_bad_record(tmp_path):
    text_page(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    annotations = write_jsonl(tmp_path / "ann.jsonl", [record("a.png"), record("b.png"), {"image": "a.png"}, record("c.png")])
    result = run("data", "check", "--annotations", str(annotations), "--image-root", str(tmp_path), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["records"] == 4
    assert [(b["index"], b["image"]) for b in report["bad"]] == [(1, "b.png"), (2, "a.png"), (3, "c.png")]
    assert all(b["dataset"] == "ann" and b["reason"] for b in report["bad"])


def test_data_check_passes_clean_config(tmp_path):
    text_page(tmp_path / "a.png")
    annotations = write_json(tmp_path / "ann.json", [record("a.png")])
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"data:\n  datasets:\n    - name: mine\n      annotations: {annotations}\n      image_root: {tmp_path}\n  val_fraction: 0.05\n  image_mode: resize\n  min_tiles: 1\n  max_tiles: 6\n  model_max_length: 8192\n"
    )
    result = run("data", "check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "records: 1" in result.stdout


@pytest.mark.slow
def test_data_check_stacks_configs_as_fit_does(tmp_path):
    """A recipe, then the user's file: its datasets replace the recipe's, the recipe's other keys stay."""
    text_page(tmp_path / "a.png")
    text_page(tmp_path / "b.png")
    write_json(tmp_path / "mine.json", [record("a.png"), record("b.png")])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  datasets:\n    - {name: upstream, annotations: /nowhere/data.json}\n  model_max_length: 8192\n")
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"data:\n  datasets:\n    - {{name: mine, annotations: {tmp_path / 'mine.json'}}}\n")
    result = run("data", "check", "--config", str(recipe), "--config", str(mine), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["records"] == 2 and not report["bad"]


@pytest.mark.slow
def test_data_show_json_is_what_the_model_sees(tmp_path):
    text_page(tmp_path / "a.png", size=(3000, 1000))
    annotations = write_json(tmp_path / "ann.json", [record("a.png", answer="x"), record("a.png", answer="第12页")])
    result = run(
        "data",
        "show",
        "--annotations",
        str(annotations),
        "--image-root",
        str(tmp_path),
        "--index",
        "1",
        "--image-mode",
        "tiles",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["num_tiles"] == 4 and shown["pixel_values_shape"] == [4, 3, 1024, 1024]
    assert shown["input_ids"].count(151859) == 4 * 256
    supervised = [token for token, label in zip(shown["input_ids"], shown["labels"]) if label != -100]
    assert supervised[-1] == 151645 and len(shown["attention_mask"]) == len(shown["input_ids"])


def test_missing_config_is_one_clear_error(tmp_path):
    result = run("data", "check", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
