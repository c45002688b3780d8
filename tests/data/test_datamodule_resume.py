"""The loader position is saved in the Lightning checkpoint: a resumed run sees exactly the rest."""

import json
import multiprocessing

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.synthetic import PageStyle, make_dataset
from tests.data.s3_server import create_bucket, s3_server
from tests.helpers import needs_litdata, run_executable


class KeyRecorder(L.LightningModule):
    """Trains a single weight on real batches and records which samples each step received."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[str, int]] = []

    def training_step(self, batch, batch_idx):
        self.seen += [(*key, round(float(pixels.sum()), 3)) for key, pixels in zip(batch["keys"], batch["pixel_values"])]
        return ((batch["pixel_values"].mean() - self.weight) ** 2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def model_dir_of(folder):
    """A model directory as the data pipeline reads it: its tile size (the tokenizer is GOT's)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"vision_config": {"image_size": 64}}))
    return folder


def fit(tmp_path, annotations, max_steps, ckpt_path=None):
    model_dir = model_dir_of(tmp_path / "model")
    data = GotDataModule(
        datasets=[DatasetSpec("synthetic", str(annotations))],
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
    assert_resume_is_exact(tmp_path, data_dir / "data.json")


def assert_resume_is_exact(tmp_path, annotations):
    # 20 samples, batch 3: 7 steps per epoch; stop at step 4 (mid-epoch), resume to 10 (into epoch 2).
    straight = fit(tmp_path / "a", annotations, 10)
    first = fit(tmp_path / "b", annotations, 4)
    checkpoint = next((tmp_path / "b" / "ckpt").glob("*.ckpt"))
    rest = fit(tmp_path / "b", annotations, 10, ckpt_path=str(checkpoint))
    assert first + rest == straight
    assert len({key[:2] for key in straight[:20]}) == 20


def pack(data_dir, model_dir, output, env=None):
    config = data_dir / "pack.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "datasets": [{"name": "synthetic", "annotations": str(data_dir / "data.json")}],
                    "model_path": str(model_dir),
                }
            }
        )
    )
    result = run_executable("data", "pack", "--config", str(config), "--output", str(output), "--chunk_mb", "0.004", env=env)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_a_resumed_run_on_packed_shards_sees_exactly_the_remaining_samples(tmp_path):
    needs_litdata()
    data_dir = tmp_path / "data"
    make_dataset(data_dir, 20, PageStyle(width=64, height=32, font_size=20, max_chars=8, min_chars=1))
    pack(data_dir, model_dir_of(tmp_path / "packer"), tmp_path / "packed")
    assert_resume_is_exact(tmp_path, tmp_path / "packed")


@pytest.mark.slow
def test_a_resumed_run_on_shards_in_a_bucket_sees_exactly_the_remaining_samples(tmp_path, monkeypatch):
    needs_litdata()
    data_dir = tmp_path / "data"
    make_dataset(data_dir, 20, PageStyle(width=64, height=32, font_size=20, max_chars=8, min_chars=1))
    with s3_server(tmp_path / "cache") as env:
        create_bucket(env, "scans")
        pack(data_dir, model_dir_of(tmp_path / "packer"), "s3://scans/pages", env=env)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert_resume_is_exact(tmp_path, "s3://scans/pages")


def test_fit_stops_its_loader_workers_when_it_ends(tmp_path):
    """Lightning shuts down only plain DataLoader iterators; ours are stopped by the DataModule's
    teardown, not left to the garbage collector (which waited 5 s per worker)."""
    data_dir = tmp_path / "data"
    make_dataset(data_dir, 20, PageStyle(width=64, height=32, font_size=20, max_chars=8, min_chars=1))
    fit(tmp_path / "run", data_dir / "data.json", 4)  # stops mid-epoch, with the persistent workers still waiting
    assert multiprocessing.active_children() == []
