"""The LightningModule on the micro model: loss, freezing, checkpoints."""

import lightning as L
import pytest
import torch

from got_lightning.model.loss import supervised_loss_sum
from got_lightning.module import GotLightningModule
from tests.training_helpers import datamodule, trainer


class GradientRecorder(GotLightningModule):
    """Keeps the batches of the first optimizer step and the gradients that step applies."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches, self.gradients = [], None

    def training_step(self, batch, batch_idx):
        if self.gradients is None:
            self.batches.append({k: v for k, v in batch.items()})
        return super().training_step(batch, batch_idx)

    def on_before_optimizer_step(self, optimizer):
        if self.gradients is None:
            self.gradients = {n: p.grad.clone() for n, p in self.named_parameters() if p.grad is not None}


def test_loss_is_the_mean_over_every_supervised_token_of_the_effective_batch(micro_model_dir, digit_pages, tmp_path):
    L.seed_everything(0)
    module = GradientRecorder(str(micro_model_dir), learning_rate=1e-3)
    data = datamodule(digit_pages, micro_model_dir, batch_size=2)
    trainer(tmp_path, max_steps=1, accumulate_grad_batches=3).fit(module, datamodule=data)
    batches = module.batches
    assert len(batches) == 3
    counts = [int((b["labels"][:, 1:] != -100).sum()) for b in batches]
    assert len(set(counts)) > 1, "micro-batches must differ in supervised tokens for this test to mean anything"

    reference = GotLightningModule(str(micro_model_dir))
    reference.load_state_dict(GotLightningModule(str(micro_model_dir)).state_dict())
    total = sum(reference.loss_sum(b)[0] for b in batches) / sum(counts)
    total.backward()
    expected = {n: p.grad for n, p in reference.named_parameters() if p.grad is not None}
    assert expected.keys() == module.gradients.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(module.gradients[name], grad, rtol=1e-4, atol=1e-7, msg=name)

    per_batch_mean = sum(reference.loss_sum(b)[0] / c for b, c in zip(batches, counts)) / 3
    assert not torch.isclose(per_batch_mean, total.detach(), rtol=1e-4)


def test_supervised_loss_matches_transformers_loss(micro_model_dir, digit_pages):
    module = GotLightningModule(str(micro_model_dir)).eval()
    data = datamodule(digit_pages, micro_model_dir, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    loss_sum, count = module.loss_sum(batch)
    out = module.got(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch["pixel_values"],
        labels=batch["labels"],
    )
    torch.testing.assert_close(loss_sum / count, out.loss, rtol=1e-5, atol=1e-6)
    assert count == int((batch["labels"][:, 1:] != -100).sum())


def test_supervised_loss_of_a_row_without_answer_is_zero():
    hidden = torch.randn(1, 4, 8, requires_grad=True)
    loss, count = supervised_loss_sum(hidden, torch.full((1, 4), -100), torch.nn.Linear(8, 5))
    assert count == 0 and loss.item() == 0.0
    loss.backward()


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_tower_never_changes_and_stays_out_of_checkpoints(micro_model_dir, digit_pages, tmp_path, frozen):
    module = GotLightningModule(str(micro_model_dir), freeze_vision_tower=frozen, learning_rate=1e-2)
    before = {k: v.clone() for k, v in module.got.model.vision_tower.state_dict().items()}
    projector_before = module.got.model.multi_modal_projector.multimodal_projector.weight.clone()
    run = trainer(tmp_path, max_steps=3)
    run.fit(module, datamodule=datamodule(digit_pages, micro_model_dir))
    assert module.got.model.vision_tower.training is not frozen
    changed = [not torch.equal(before[k], v) for k, v in module.got.model.vision_tower.state_dict().items()]
    assert (not any(changed)) if frozen else any(changed)
    assert not torch.equal(projector_before, module.got.model.multi_modal_projector.multimodal_projector.weight)

    run.save_checkpoint(tmp_path / "step3.ckpt")
    saved = torch.load(tmp_path / "step3.ckpt", weights_only=True)
    tower_keys = [k for k in saved["state_dict"] if ".vision_tower." in k]
    assert (tower_keys == []) if frozen else tower_keys
    assert any(".multi_modal_projector." in k for k in saved["state_dict"])

    restored = GotLightningModule(str(micro_model_dir), freeze_vision_tower=frozen)
    restored.on_load_checkpoint(saved)
    restored.load_state_dict(saved["state_dict"], strict=False)
    for (name, a), b in zip(module.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_of_another_freezing_setup_is_refused(micro_model_dir, digit_pages, tmp_path):
    module = GotLightningModule(str(micro_model_dir), freeze_vision_tower=True)
    run = trainer(tmp_path, max_steps=1)
    run.fit(module, datamodule=datamodule(digit_pages, micro_model_dir))
    run.save_checkpoint(tmp_path / "a.ckpt")
    other = GotLightningModule(str(micro_model_dir), freeze_vision_tower=False)
    with pytest.raises(ValueError, match="missing .*vision_tower"):
        other.on_load_checkpoint(torch.load(tmp_path / "a.ckpt", weights_only=True))


def test_everything_frozen_is_refused(micro_model_dir):
    with pytest.raises(ValueError, match="nothing to train"):
        GotLightningModule(str(micro_model_dir), freeze_projector=True, freeze_language_model=True)


def gradient_norm(module):
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in module.parameters() if p.grad is not None])))


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_gradients_are_clipped_with_the_fused_optimizer_under_any_precision(micro_model_dir, digit_pages, tmp_path, precision):
    norms = {}

    class ClipRecorder(L.Callback):
        """The norm Lightning hands to clipping, and the norm the optimizer step then sees."""

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            norms["before"] = gradient_norm(pl_module)
            optimizer.register_step_post_hook(lambda *_: norms.setdefault("stepped", gradient_norm(pl_module)))

    L.seed_everything(0)
    module = GotLightningModule(str(micro_model_dir), learning_rate=1e-3)
    data = datamodule(digit_pages, micro_model_dir)
    trainer(tmp_path, max_steps=1, precision=precision, gradient_clip_val=0.01, callbacks=[ClipRecorder()]).fit(
        module, datamodule=data
    )
    assert module.trainer.optimizers[0].defaults["fused"]
    assert norms["before"] > 0.1
    assert norms["stepped"] == pytest.approx(0.01, rel=1e-3)


@pytest.mark.parametrize("freeze_vision_tower", [True, False])
def test_encoding_tiles_in_small_chunks_gives_the_same_loss_and_gradients(freeze_vision_tower, micro_model_dir, digit_pages):
    data = datamodule(digit_pages, micro_model_dir, batch_size=5)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    results = []
    for chunk in (None, 2):
        module = GotLightningModule(str(micro_model_dir), freeze_vision_tower=freeze_vision_tower, vision_batch_size=chunk)
        loss, _ = module.loss_sum(batch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in module.named_parameters() if p.grad is not None}))
    (whole, whole_grads), (chunked, chunked_grads) = results
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-6)
    assert chunked_grads.keys() == whole_grads.keys() and any("vision_tower" in n for n in whole_grads) != freeze_vision_tower
    for name, gradient in whole_grads.items():
        torch.testing.assert_close(chunked_grads[name], gradient, rtol=1e-5, atol=1e-7, msg=name)
