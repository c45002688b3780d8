"""A trained checkpoint out to where it is used: a stock transformers model directory with its
model card."""

from got_lightning.export.model_dir import export, module_from_checkpoint

__all__ = ["export", "module_from_checkpoint"]
