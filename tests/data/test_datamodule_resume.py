"""The loader position is saved in the Lightning checkpoint: a resumed run sees exactly the rest."""

import json
import multiprocessing

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.synthetic import PageStyle, make_dataset


class KeyRecorder(L.LightningModule):
    """Trains a single weight on real batches and records which samples each step received."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[str, int]] = []

    def training_step(self, batch, batch_idx):
        self.seen += [tuple(key) for key in batch["keys"]]
        return ((batch["pixel_values"].mean() - self.weight) ** 2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path, data_dir, max_steps, ckpt_path=None):
    model_dir = tmp_path / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps({"vision_config": {"image_size": 64}}))
    data = GotDataModule(
        datasets=[DatasetSpec("synthetic", str(data_dir / "data.json"))],
        val_fraction=0.0,
        batch_size=3,
        group_by_length=True,
        num_workers=2,
        model_path=str(model_dir),
    )
    model = KeyRecorder()
    trainer = L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path / "run",
        use_distributed_sampler=False,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=max_steps, save_top_k=-1)],
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model.seen


def test_resumed_run_sees_exactly_the_remaining_samples(tmp_path):
    data_dir = tmp_path / "data"
    make_dataset(data_dir, 20, PageStyle(width=64, height=32, font_size=20, max_chars=8, min_chars=1))
    # 20 samples, batch 3: 7 steps per epoch; stop at step 4 (mid-epoch), resume to 10 (into epoch 2).
    straight = fit(tmp_path / "a", data_dir, 10)
    first = fit(tmp_path / "b", data_dir, 4)
    checkpoint = next((tmp_path / "b" / "ckpt").glob("*.ckpt"))
    rest = fit(tmp_path / "b", data_dir, 10, ckpt_path=str(checkpoint))
    assert first + rest == straight
    assert len(set(straight[:20])) == 20


def test_fit_stops_its_loader_workers_when_it_ends(tmp_path):
    """Lightning shuts down only plain DataLoader iterators; ours are stopped by the DataModule's
    teardown, not left to the garbage collector (which waited 5 s per worker)."""
    data_dir = tmp_path / "data"
    make_dataset(data_dir, 20, PageStyle(width=64, height=32, font_size=20, max_chars=8, min_chars=1))
    fit(tmp_path / "run", data_dir, 4)  # stops mid-epoch, with the persistent workers still waiting
    assert multiprocessing.active_children() == []
