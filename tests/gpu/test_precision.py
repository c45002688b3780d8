"""Mixed precision with gradient clipping on one GPU, without DeepSpeed (skipped without CUDA)."""

import lightning as L
import pytest
import torch

from got_lightning.module import GotLightningModule
from tests.training_helpers import datamodule, trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("precision, fused", [("bf16-mixed", True), ("16-mixed", False)])
def test_mixed_precision_with_clipping_trains(micro_model_dir, digit_pages, tmp_path, precision, fused):
    L.seed_everything(0)
    module = GotLightningModule(str(micro_model_dir), learning_rate=1e-3)
    before = {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}
    data = datamodule(digit_pages, micro_model_dir)
    trainer(tmp_path, accelerator="gpu", max_steps=3, precision=precision, gradient_clip_val=1.0).fit(module, datamodule=data)
    assert module.trainer.optimizers[0].defaults["fused"] is fused
    after = dict(module.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(after[name].detach().cpu(), value.cpu()) for name, value in before.items())
