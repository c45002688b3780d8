"""`got-lightning export`: a Lightning checkpoint becomes a stock transformers directory."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors import safe_open
from transformers import AutoProcessor, GotOcr2ForConditionalGeneration

from got_lightning.cli import main
from got_lightning.evaluation.results import read_predictions
from got_lightning.export import module_from_checkpoint
from got_lightning.model.loading import load_model
from tests.helpers import run_executable
from tests.training_helpers import datamodule, fit_config


def test_export_merges_lora_keeps_frozen_weights_and_gives_the_same_logits(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(
        tmp_path / "lora.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / "run",
        model={"lora": {"rank": 4, "alpha": 8, "dropout": 0.0}, "learning_rate": 1e-2},
    )
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "3"]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main(["export", "--ckpt", str(checkpoint), "--output", str(tmp_path / "out")]) == 0

    exported = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    assert processor.image_processor.size["height"] == 64
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as weights:
        keys = set(weights.keys())
    assert not any("lora" in key or "base_layer" in key for key in keys)
    # transformers writes the hub layout (`vision_tower.*`, `language_model.model.*`) and maps it back on load.
    assert any(key.startswith("vision_tower.") for key in keys)

    base = load_model(micro_model_dir)
    torch.testing.assert_close(
        exported.model.vision_tower.patch_embed.projection.weight, base.model.vision_tower.patch_embed.projection.weight
    )
    assert not torch.equal(
        exported.model.language_model.layers[0].self_attn.q_proj.weight,
        base.model.language_model.layers[0].self_attn.q_proj.weight,
    )

    module = module_from_checkpoint(checkpoint)
    data = datamodule(digit_pages, micro_model_dir, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        ours = module.logits(batch)
        theirs = exported(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]
        ).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_the_export_carries_a_model_card_for_the_hub(micro_model_dir, digit_pages, tmp_path):
    run = tmp_path / "run"
    config = fit_config(
        tmp_path / "c.yaml",
        digit_pages,
        micro_model_dir,
        run,
        trainer={"limit_val_batches": 1.0, "val_check_interval": 2, "check_val_every_n_epoch": None},
    )
    fit = ["fit", "--config", str(config), "--trainer.max_steps", "2"]
    assert run_executable(*fit).returncode == 0
    output = tmp_path / "export"
    export = ["export", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--output", str(output)]
    result = run_executable(*export)
    assert result.returncode == 0, result.stderr[-3000:]

    card = (output / "README.md").read_text(encoding="utf-8")
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    metadata = yaml.safe_load(front)
    metrics = json.loads((run / "validation" / "step-000002" / "metrics.json").read_text())
    assert metadata["datasets"] == ["digits"] and metadata["library_name"] == "transformers"
    assert "base_model" not in metadata  # a local folder is no hub id
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == pytest.approx(metrics["cer"], abs=1e-6)
    assert (
        f"CER {metrics['cer']:.4f} on {metrics['num_samples']} of {metrics['num_held_out']} held-out samples, at step 2" in body
    )
    assert (
        f"Trained with: `got-lightning {' '.join(fit)}`" in body and f"Exported with: `got-lightning {' '.join(export)}`" in body
    )
    assert "num_image_tokens=1" in body  # the micro model's 64-px tiles


def test_stock_processor_and_generate_read_an_export_of_a_small_preset_as_predict_does(micro_model_dir, digit_pages, tmp_path):
    """The export of a 64-px preset (one image token per tile) names its image tokens in
    processor_config.json; stock AutoProcessor with that number and stock `generate` read each page
    as `got-lightning predict` does (with GOT's 256, stock `generate` fails on this model)."""
    config = fit_config(tmp_path / "fit.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2"]) == 0
    export_dir = tmp_path / "export"
    assert main(["export", "--ckpt", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--output", str(export_dir)]) == 0
    image_tokens = json.loads((export_dir / "processor_config.json").read_text())["num_image_tokens"]
    assert image_tokens == 1

    pages = sorted((digit_pages / "images").glob("*.png"))[:6]
    predict = ["predict", "--model.model_path", str(export_dir), "--data.predict_input", str(digit_pages / "images")]
    predict += ["--trainer.default_root_dir", str(tmp_path / "out"), "--trainer.logger", "false"]
    predict += ["--trainer.accelerator", "cpu", "--model.generation.max_new_tokens", "8"]
    assert main(predict) == 0
    predicted = {
        Path(line["image"]).name: line["prediction"]
        for line in read_predictions(tmp_path / "out" / "predict" / "predictions.jsonl")
    }

    model = GotOcr2ForConditionalGeneration.from_pretrained(export_dir).eval()
    processor = AutoProcessor.from_pretrained(export_dir)
    readings = {}
    for page in pages:
        inputs = processor(Image.open(page).convert("RGB"), return_tensors="pt", num_image_tokens=image_tokens)
        assert int((inputs["input_ids"] == processor.image_token_id).sum()) == image_tokens
        with torch.no_grad():
            ids = model.generate(
                **inputs, do_sample=False, max_new_tokens=8, stop_strings="<|im_end|>", tokenizer=processor.tokenizer
            )
        readings[page.name] = processor.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert all(readings.values())
    assert readings == {name: predicted[name] for name in readings}
