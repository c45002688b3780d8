"""`got-lightning predict`: folders, list files and annotation files, from a model dir or a checkpoint."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from PIL import Image

from got_lightning.cli import main
from got_lightning.data.predict import PredictPrompt, list_images
from got_lightning.evaluation.prediction_files import PredictionFiles, read_complete_lines
from got_lightning.evaluation.results import read_predictions
from got_lightning.tokens import IMAGE_PLACEHOLDER
from tests.helpers import executable, run_executable
from tests.training_helpers import fit_config


def predict_args(model_dir, source, root, *extra):
    return [
        "predict",
        "--model.model_path",
        str(model_dir),
        "--data.predict_input",
        str(source),
        "--data.eval_batch_size",
        "4",
        "--trainer.default_root_dir",
        str(root),
        "--trainer.logger",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--model.generation.max_new_tokens",
        "8",
        *extra,
    ]


def test_prompts_follow_got_inference_format():
    assert PredictPrompt().text((100, 50), tiles_mode=False) == f"{IMAGE_PLACEHOLDER}\nOCR: "
    assert PredictPrompt(ocr_type="format").text((100, 50), False) == f"{IMAGE_PLACEHOLDER}\nOCR with format: "
    assert PredictPrompt(box=[10, 5, 60, 50]).text((100, 50), False) == f"{IMAGE_PLACEHOLDER}\n[100, 100, 600, 1000] OCR: "
    assert PredictPrompt(color="red").text((100, 50), False) == f"{IMAGE_PLACEHOLDER}\n[red] OCR: "
    assert PredictPrompt().text((100, 50), tiles_mode=True).endswith("OCR with format upon the patch reference: ")
    with pytest.raises(ValueError, match="box"):
        PredictPrompt(box=[5, 5, 1, 1])
    with pytest.raises(ValueError, match="color"):
        PredictPrompt(color="purple")


def test_list_files_resolve_relative_paths_from_their_folder(tmp_path):
    (tmp_path / "pages").mkdir()
    Image.new("RGB", (8, 8), "white").save(tmp_path / "pages" / "a.png")
    (tmp_path / "list.txt").write_text("# scans\npages/a.png\n\n", encoding="utf-8")
    assert list_images(tmp_path / "list.txt") == [str(tmp_path / "pages" / "a.png")]
    assert list_images(tmp_path / "pages") == [str(tmp_path / "pages" / "a.png")]


def test_predict_on_a_folder_writes_every_image_and_names_the_bad_one(image_sensitive_model_dir, digit_pages, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for path in sorted((digit_pages / "images").iterdir())[:5]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.png").write_bytes(b"not a png")
    root = tmp_path / "out"
    assert main(predict_args(image_sensitive_model_dir, folder, root, "--predict_output.write_txt", "true")) == 0

    lines = read_predictions(root / "predict" / "predictions.jsonl")
    assert len(lines) == 6
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1 and errors[0]["image"].endswith("broken.png")
    good = [line for line in lines if "error" not in line]
    assert {line["image"] for line in good} == {str(path) for path in folder.glob("*.png") if path.name != "broken.png"}
    for line in good:
        txt = root / "predict" / "txt" / f"{line['image'].rsplit('/', 1)[-1].rsplit('.', 1)[0]}.txt"
        assert txt.read_text(encoding="utf-8") == line["prediction"]


def test_annotation_input_keeps_references_and_matches_folder_predictions(image_sensitive_model_dir, digit_pages, tmp_path):
    assert main(predict_args(image_sensitive_model_dir, digit_pages / "data.json", tmp_path / "ann")) == 0
    assert main(predict_args(image_sensitive_model_dir, digit_pages / "images", tmp_path / "dir")) == 0
    from_annotations = read_predictions(tmp_path / "ann" / "predict" / "predictions.jsonl")
    from_folder = read_predictions(tmp_path / "dir" / "predict" / "predictions.jsonl")
    records = json.loads((digit_pages / "data.json").read_text(encoding="utf-8"))
    assert [line["reference"] for line in from_annotations] == [r["conversations"][1]["value"] for r in records]
    # Same pages, same "<image>\nOCR: " prompt: the same answers.
    by_name = {line["image"].rsplit("/", 1)[-1]: line["prediction"] for line in from_folder}
    assert [by_name[line["image"].rsplit("/", 1)[-1]] for line in from_annotations] == [
        line["prediction"] for line in from_annotations
    ]


def test_predict_from_a_training_checkpoint(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "fit.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2"]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main(predict_args(micro_model_dir, digit_pages / "images", tmp_path / "out", "--ckpt_path", str(checkpoint))) == 0
    assert len(read_predictions(tmp_path / "out" / "predict" / "predictions.jsonl")) == 24


def collection_args(model_dir, folder, output, *extra):
    arguments = ["predict", "--model.model_path", str(model_dir), "--data.predict_input", str(folder)]
    arguments += ["--predict_output.path", str(output), "--data.eval_batch_size", "2", "--trainer.logger", "false"]
    arguments += ["--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(output.parent)]
    return [*arguments, "--model.generation.max_new_tokens", "48", *extra]


def readings(path):
    return [(line["image"], line["prediction"], line["new_tokens"], line["truncated"]) for line in read_predictions(path)]


@pytest.fixture(scope="module")
def uninterrupted(image_sensitive_model_dir, digit_pages, tmp_path_factory):
    output = tmp_path_factory.mktemp("uninterrupted") / "predictions.jsonl"
    assert main(collection_args(image_sensitive_model_dir, digit_pages / "images", output)) == 0
    lines = read_predictions(output)
    assert len(lines) == 24 and {"new_tokens", "truncated", "confidence", "seconds"} <= set(lines[0])
    return readings(output)


def test_a_rerun_with_other_settings_is_refused_in_one_line(
    image_sensitive_model_dir, digit_pages, tmp_path, capsys, uninterrupted
):
    output = tmp_path / "predictions.jsonl"
    arguments = collection_args(image_sensitive_model_dir, digit_pages / "images", output)
    assert main(arguments) == 0
    assert main([*arguments, "--model.generation.max_new_tokens", "9"]) == 2
    assert "max_new_tokens" in capsys.readouterr().err
    assert main([*arguments, "--model.generation.max_new_tokens", "9", "--predict_output.overwrite", "true"]) == 0
    assert all(line[2] <= 9 for line in readings(output))


@pytest.mark.slow
def test_two_processes_write_every_input_once_as_one_process_does(
    image_sensitive_model_dir, digit_pages, tmp_path, uninterrupted
):
    output = tmp_path / "predictions.jsonl"
    run = run_executable(*collection_args(image_sensitive_model_dir, digit_pages / "images", output, "--trainer.devices", "2"))
    assert run.returncode == 0, run.stderr
    assert readings(output) == uninterrupted
    assert not PredictionFiles(output).parts.exists()


@pytest.mark.slow
@pytest.mark.parametrize("devices", [(1, 1), (2, 1), (1, 2)], ids=["1-then-1", "2-then-1", "1-then-2"])
def test_kill_9_mid_collection_then_the_same_command_continues(
    devices, image_sensitive_model_dir, digit_pages, tmp_path, uninterrupted
):
    output = tmp_path / "predictions.jsonl"
    first = collection_args(image_sensitive_model_dir, digit_pages / "images", output, "--trainer.devices", str(devices[0]))
    run = subprocess.Popen(
        [str(executable()), *first], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    files = PredictionFiles(output)
    deadline = time.monotonic() + 120
    while sum(len(read_complete_lines(path)) for path in files.files()) < 6:
        assert run.poll() is None and time.monotonic() < deadline, "predict ended before it could be killed"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert len(files.lines()) < 24, "the kill came after the last page"
    written = files.files()[-1]
    with open(written, "a", encoding="utf-8") as handle:  # as if the kill had torn a line in two
        handle.write('{"image": "' + str(digit_pages / "images"))
    again = collection_args(image_sensitive_model_dir, digit_pages / "images", output, "--trainer.devices", str(devices[1]))
    rerun = run_executable(*again)
    assert rerun.returncode == 0, rerun.stderr
    assert "already there from an earlier run" in rerun.stdout
    assert readings(output) == uninterrupted
