"""Builders for training tests: a datamodule and trainer on the micro model, and fit configs."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import yaml

from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule


def datamodule(pages: Path, model_dir: Path, batch_size: int = 2, **options) -> GotDataModule:
    return GotDataModule(
        datasets=[DatasetSpec("digits", str(pages / "data.json"))],
        batch_size=batch_size,
        eval_batch_size=4,
        model_path=str(model_dir),
        **options,
    )


def trainer(root: Path, **options) -> L.Trainer:
    settings = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=-1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        use_distributed_sampler=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    settings.update(options)
    return L.Trainer(**settings)


def fit_config(path: Path, pages: Path, model_dir: Path, root: Path, **sections) -> Path:
    """A complete `got-lightning fit` config for the micro model; `sections` update it key by key."""
    config = {
        "seed_everything": 0,
        "model": {
            "model_path": str(model_dir),
            "learning_rate": 1e-3,
            "warmup_ratio": 0.1,
            "generation": {"max_new_tokens": 10, "no_repeat_ngram_size": 0},
        },
        "data": {
            "datasets": [{"name": "digits", "annotations": str(pages / "data.json")}],
            "val_fraction": 0.2,
            "batch_size": 2,
            "eval_batch_size": 4,
            "num_workers": 0,
        },
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 4,
            "max_epochs": -1,
            "logger": False,
            "enable_progress_bar": False,
            "num_sanity_val_steps": 0,
            "limit_val_batches": 0,
            "default_root_dir": str(root),
            "callbacks": [],
        },
        "checkpoint": {"every_n_train_steps": 2},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class BatchKeyRecorder(L.Callback):
    """Appends every training batch's sample keys, with rank and epoch, to a JSON-lines file (one
    file per rank: `<path>.rank<N>` when there are several)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        path = Path(self.path if trainer.world_size == 1 else f"{self.path}.rank{trainer.global_rank}")
        row = {"rank": trainer.global_rank, "epoch": trainer.current_epoch, "keys": [list(key) for key in batch.get("keys", [])]}
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


def read_batch_keys(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
