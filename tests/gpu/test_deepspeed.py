"""Real DeepSpeed and bf16 runs: need a CUDA GPU (skipped elsewhere)."""

import pytest
import torch

from got_lightning.cli import main
from got_lightning.export import module_from_checkpoint
from got_lightning.model.presets import random_model
from tests.training_helpers import datamodule, fit_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
pytest.importorskip("deepspeed")

ZERO2 = {
    "class_path": "got_lightning.training.strategies.GotDeepSpeedStrategy",
    "init_args": {"config": "zero_config/zero2.json"},
}


def gpu_config(tmp_path, pages, model_dir, name, **trainer):
    settings = {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed", "strategy": ZERO2, "accumulate_grad_batches": 2}
    settings.update(trainer)
    return fit_config(
        tmp_path / f"{name}.yaml", pages, model_dir, tmp_path / name, trainer=settings, model={"lr_schedule_steps": 8}
    )


def test_zero2_bf16_fit_resume_and_export(micro_model_dir, digit_pages, tmp_path):
    straight = gpu_config(tmp_path, digit_pages, micro_model_dir, "a")
    halves = gpu_config(tmp_path, digit_pages, micro_model_dir, "b")
    assert main(["fit", "--config", str(straight), "--trainer.max_steps", "8"]) == 0
    assert main(["fit", "--config", str(halves), "--trainer.max_steps", "4"]) == 0
    assert main(["fit", "--config", str(halves), "--trainer.max_steps", "8", "--ckpt_path", "last"]) == 0
    last_a, last_b = tmp_path / "a/checkpoints/last.ckpt", tmp_path / "b/checkpoints/last.ckpt"
    assert last_a.is_dir() and last_b.is_dir()
    a, b = module_from_checkpoint(last_a), module_from_checkpoint(last_b)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(y, x, rtol=1e-3, atol=1e-4, msg=name)

    assert main(["export", "--ckpt", str(last_a), "--output", str(tmp_path / "out")]) == 0
    from transformers import GotOcr2ForConditionalGeneration

    exported = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    data = datamodule(digit_pages, micro_model_dir, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(
            exported(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"]
            ).logits,
            a.eval().logits(batch),
            rtol=1e-4,
            atol=1e-4,
        )


def test_real_size_got_trains_in_bf16():
    model = random_model("got", 0).cuda().to(torch.bfloat16).train()
    model.model.vision_tower.requires_grad_(False)
    assert 5.5e8 < sum(p.numel() for p in model.parameters()) < 6.2e8
    tokens = 256 + 64
    input_ids = torch.full((1, tokens), 100, device="cuda")
    input_ids[0, 10:266] = model.config.image_token_id
    pixels = torch.randn(1, 3, 1024, 1024, device="cuda", dtype=torch.bfloat16)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    losses = []
    for _ in range(3):
        loss = model(
            input_ids=input_ids, pixel_values=pixels, labels=input_ids.masked_fill(input_ids == model.config.image_token_id, -100)
        ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
