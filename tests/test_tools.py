import json
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, text_page

TOOLS = REPO_ROOT / "tools"


def test_build_dataset_from_character_boxes_and_transcripts(tmp_path):
    raw = tmp_path / "raw"
    text_page(raw / "p1.jpg")
    text_page(raw / "p2.png")
    text_page(raw / "p3.png")
    (raw / "p4.jpg").write_text("not an image")
    text_page(raw / "p5.png")
    # two vertical columns, right to left; order field decides reading order
    boxes = [[100, 0, 120, 20, 1, "天"], [100, 20, 120, 40, 2, "地"], [60, 0, 80, 20, 3, "玄"], [60, 20, 80, 40, 4, "黄"]]
    (raw / "p1.json").write_text(json.dumps(list(reversed(boxes)), ensure_ascii=False))
    (raw / "p2.txt").write_text("hello 123\n", encoding="utf-8")
    (raw / "p3.json").write_text("[]")
    out = tmp_path / "dataset"
    result = subprocess.run(
        [sys.executable, str(TOOLS / "build_dataset.py"), "--images", str(raw), "--output", str(out), "--line_breaks", "columns"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    records = json.loads((out / "data.json").read_text(encoding="utf-8"))
    answers = {r["image"]: r["conversations"][1]["value"] for r in records}
    assert answers == {"images/p1.jpg": "天地\n玄黄", "images/p2.png": "hello 123"}
    assert all(r["conversations"][0]["value"] == "<image>\nOCR: " for r in records)
    assert (out / "images" / "p1.jpg").is_file()
    for name, reason in (("p3.png", "empty labels"), ("p4.jpg", ""), ("p5.png", "no label file")):
        assert f"skipped {name}: {reason}" in result.stderr


def test_make_synthetic_is_deterministic(tmp_path):
    for name in ("a", "b"):
        subprocess.run(
            [sys.executable, str(TOOLS / "make_synthetic.py"), "--output", str(tmp_path / name), "--count", "5", "--seed", "3"],
            check=True,
            timeout=120,
        )
    assert (tmp_path / "a" / "data.json").read_text() == (tmp_path / "b" / "data.json").read_text()
    assert (tmp_path / "a" / "images" / "000004.png").read_bytes() == (tmp_path / "b" / "images" / "000004.png").read_bytes()


@pytest.mark.slow
def test_bench_gpu_runs_ours_and_the_trainer_and_names_what_cannot_run(tmp_path):
    command = [
        sys.executable,
        str(TOOLS / "bench_gpu.py"),
        "compare",
        "--device",
        "cpu",
        "--preset",
        "micro",
        "--pages",
        "4",
        "--steps",
        "3",
        "--skip",
        "1",
        "--batch_size",
        "2",
        "--num_workers",
        "0",
        "--runs",
        "ours_auto,ours_zero2,trainer",
    ]
    result = subprocess.run(command, cwd=TOOLS.parent, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"name"')]
    assert [line["name"] for line in lines] == ["gpu_ours_auto_vs_trainer"]
    assert lines[0]["ours"] > 0 and lines[0]["baseline"] > 0 and lines[0]["ratio"] > 0
    assert "ours_zero2           not run: DeepSpeed needs a CUDA GPU" in result.stdout


@pytest.mark.slow
def test_bench_startup_times_every_help_and_the_first_batch_of_ours_and_a_baseline(tmp_path):
    command = [sys.executable, str(TOOLS / "bench_startup.py"), "--repeats", "1", "--workdir", str(tmp_path)]
    result = subprocess.run([*command, "--baseline", str(REPO_ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line["name"]: line for line in map(json.loads, result.stdout.splitlines())}
    helps = [name for name in lines if name.endswith(" --help")]
    assert len(helps) == 12 and all(lines[name]["ours"] > 0 and lines[name]["baseline"] > 0 for name in helps)
    first, whole = lines["startup/validate demo: command to first batch"], lines["startup/validate demo: whole command"]
    assert 0 < first["ours"] < whole["ours"] and 0 < first["baseline"] < whole["baseline"]
    assert (tmp_path / "ours" / "runs" / "demo" / "model").is_dir() and (tmp_path / "baseline" / "runs" / "demo").is_dir()
