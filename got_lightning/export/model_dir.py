"""A Lightning or DeepSpeed checkpoint to a stock transformers model directory."""

from __future__ import annotations

import inspect
from pathlib import Path

from got_lightning.core.errors import SettingError
from got_lightning.data.images.geometry import PIXELS_PER_TOKEN_SIDE
from got_lightning.export.model_card import model_card
from got_lightning.model.loading import save_model_dir
from got_lightning.module import GotLightningModule
from got_lightning.training.checkpoints import read_checkpoint
from got_lightning.training.run_record import held_out_for


def module_from_checkpoint(path: str | Path, model_path: str | None = None, revision: str | None = None) -> GotLightningModule:
    """The LightningModule of a checkpoint: base weights from its model directory (or `model_path`),
    then the checkpoint's trained weights on top."""
    checkpoint = read_checkpoint(path)
    accepted = inspect.signature(GotLightningModule.__init__).parameters
    # LightningCLI adds bookkeeping entries such as `_instantiator`; keep the module's own arguments.
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if k in accepted}
    if model_path is not None:
        hparams["model_path"] = model_path
    if revision is not None:
        hparams["revision"] = revision
    if "model_path" not in hparams:
        raise SettingError(f"{path} has no hyper_parameters.model_path; pass --model_path")
    hparams["gradient_checkpointing"] = False
    module = GotLightningModule(**hparams)
    module.load_trained(checkpoint)
    return module.eval()


def export(
    ckpt: str | Path,
    output: str | Path,
    model_path: str | None = None,
    revision: str | None = None,
    command: str = "got-lightning export",
) -> Path:
    """Write config, full safetensors weights (frozen ones included, LoRA merged), tokenizer and
    processor config to `output`, with a model card (README.md) for the Hub's model page."""
    module = module_from_checkpoint(ckpt, model_path, revision)
    output = save_model_dir(module.merged_model(), module.tokenizer, output)
    tokens = (module.image_size // PIXELS_PER_TOKEN_SIDE) ** 2
    record, step = module.run_record, module.loaded_step
    card = model_card(
        record,
        held_out_for(record, Path(ckpt), step),
        module.hparams.model_path,
        module.hparams.get("revision"),
        step,
        tokens,
        command,
    )
    (Path(output) / "README.md").write_text(card, encoding="utf-8")
    return output
