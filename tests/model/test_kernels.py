"""The language model's attention kernel and compiled layers give the same loss and gradients."""

import importlib.util

import pytest
import torch

from got_lightning.cli import main
from got_lightning.module import GotLightningModule
from tests.training_helpers import datamodule

pytestmark = pytest.mark.xdist_group("kernels")  # one worker builds the module's shared runs


@pytest.fixture(scope="module")
def batch(micro_model_dir, digit_pages):
    data = datamodule(digit_pages, micro_model_dir, batch_size=4)
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def loss_and_gradients(module, batch):
    module.train()
    loss_sum, count = module.loss_sum(batch)
    (loss_sum / count).backward()
    return loss_sum / count, {name: p.grad for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"attn_implementation": "eager"}, id="eager"),
        pytest.param({"compile": True}, id="compiled", marks=pytest.mark.slow),
    ],
)
def test_kernel_choice_keeps_loss_gradients_and_parameter_names(micro_model_dir, batch, settings):
    torch.manual_seed(0)
    reference = GotLightningModule(str(micro_model_dir))
    other = GotLightningModule(str(micro_model_dir), **settings)
    assert reference.got.model.language_model.config._attn_implementation == "sdpa"
    assert list(other.state_dict()) == list(reference.state_dict())
    layers = other.got.model.language_model.layers
    assert all((layer._compiled_call_impl is not None) == bool(settings.get("compile")) for layer in layers)
    expected_loss, expected = loss_and_gradients(reference, batch)
    loss, gradients = loss_and_gradients(other, batch)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-6)
    assert gradients.keys() == expected.keys()
    for name, gradient in expected.items():
        torch.testing.assert_close(gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed")
def test_flash_attention_without_its_package_is_one_clear_error(micro_model_dir, capsys):
    assert (
        main(
            [
                "fit",
                "--model.model_path",
                str(micro_model_dir),
                "--model.attn_implementation",
                "flash_attention_2",
                "--trainer.accelerator",
                "cpu",
                "--trainer.max_steps",
                "1",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "model.attn_implementation 'flash_attention_2' cannot be used" in error
    assert "Traceback" not in error
