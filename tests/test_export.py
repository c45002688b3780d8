"""`got-lightning export`: a Lightning checkpoint becomes a stock transformers directory."""

import torch
from safetensors import safe_open
from transformers import AutoProcessor, GotOcr2ForConditionalGeneration

from got_lightning.cli import main
from got_lightning.export import module_from_checkpoint
from got_lightning.model.loading import load_model
from tests.training_helpers import datamodule, fit_config


def test_export_merges_lora_keeps_frozen_weights_and_gives_the_same_logits(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(
        tmp_path / "lora.yaml", digit_pages, micro_model_dir, tmp_path / "run",
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
    torch.testing.assert_close(exported.model.vision_tower.patch_embed.projection.weight,
                               base.model.vision_tower.patch_embed.projection.weight)
    assert not torch.equal(exported.model.language_model.layers[0].self_attn.q_proj.weight,
                           base.model.language_model.layers[0].self_attn.q_proj.weight)

    module = module_from_checkpoint(checkpoint)
    data = datamodule(digit_pages, micro_model_dir, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        ours = module.logits(batch)
        theirs = exported(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          pixel_values=batch["pixel_values"]).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)
