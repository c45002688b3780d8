"""Checkpoints written before the package layout changed still load, resume and export: state-dict
keys, hyperparameters and loop state are a public contract."""

from pathlib import Path

import pytest
import torch

from got_lightning.export import module_from_checkpoint
from tests.helpers import run_executable
from tests.training_helpers import fit_config

OLD = Path(__file__).parent / "fixtures" / "projector-step2-before-layout.ckpt"


@pytest.mark.slow
def test_an_old_checkpoint_loads_resumes_and_exports(micro_model_dir, digit_pages, tmp_path):
    saved = torch.load(OLD, weights_only=True)
    module = module_from_checkpoint(OLD, model_path=str(micro_model_dir))
    current = module.state_dict()
    for name, tensor in saved["state_dict"].items():
        assert torch.equal(current[name], tensor), name

    run = tmp_path / "run"
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, run, model={"freeze_language_model": True})
    result = run_executable("fit", "--config", str(config), "--trainer.max_steps", "4", "--ckpt_path", str(OLD))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "callbacks used to create the checkpoint" not in result.stderr  # its callbacks' states are found
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

    result = run_executable(
        "export", "--ckpt", str(OLD), "--model_path", str(micro_model_dir), "--output", str(tmp_path / "export")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import GotOcr2ForConditionalGeneration

    exported = GotOcr2ForConditionalGeneration.from_pretrained(tmp_path / "export").state_dict()
    name = "model.multi_modal_projector.multimodal_projector.weight"
    assert torch.equal(exported[name], saved["state_dict"][f"got.{name}"])
