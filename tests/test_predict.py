"""`got-lightning predict`: folders, list files and annotation files, from a model dir or a checkpoint."""

import json
import shutil

import pytest
from PIL import Image

from got_lightning.cli import main
from got_lightning.data.predict import PredictPrompt, list_images
from got_lightning.evaluation.results import read_predictions
from got_lightning.tokens import IMAGE_PLACEHOLDER
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
