"""Every epoch has its own order, through `got-lightning fit` and Lightning's real loops: epoch e's
order depends only on (seed, e), whether the run was resumed or not, at an epoch boundary or
mid-epoch; under DDP each sample is seen once per epoch across ranks."""

import subprocess
import sys

import pytest

from got_lightning.cli import main
from got_lightning.data.sampler import TrainBatchSampler
from got_lightning.data.synthetic import PageStyle, make_dataset
from tests.training_helpers import datamodule, fit_config, read_batch_keys

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("epoch_order")]  # one worker builds the module's shared runs

RECORDER = "tests.training_helpers.BatchKeyRecorder"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    make_dataset(folder, 20, PageStyle(width=64, height=32, font_size=20, max_chars=8, min_chars=1))
    return folder


def config(tmp_path, pages, model_dir, name, group_by_length, every_n_train_steps=1):
    recorder = {"class_path": RECORDER, "init_args": {"path": str(tmp_path / f"{name}.jsonl")}}
    return fit_config(
        tmp_path / f"{name}.yaml",
        pages,
        model_dir,
        tmp_path / name,
        data={"val_fraction": 0.0, "batch_size": 3, "group_by_length": group_by_length, "seed": 7, "num_workers": 1},
        trainer={"callbacks": [recorder]},
        checkpoint={"every_n_train_steps": every_n_train_steps},
    )


def fit(config_path, *arguments):
    assert main(["fit", "--config", str(config_path), *arguments]) == 0


def epochs_seen(path) -> dict[int, list]:
    orders: dict[int, list] = {}
    for row in read_batch_keys(path):
        orders.setdefault(row["epoch"], []).extend(row["keys"])
    return orders


def sampler_order(pages, model_dir, group_by_length: bool, epoch: int) -> list:
    data = datamodule(pages, model_dir, val_fraction=0.0, group_by_length=group_by_length)
    data.setup("fit")
    sampler = TrainBatchSampler(data.train_lengths(), 3, seed=7, group_by_length=group_by_length)
    sampler.set_epoch(epoch)
    return [[source.name, position] for batch in sampler for source, position in map(data.train_dataset.locate, batch)]


@pytest.mark.parametrize("group_by_length", [False, True])
def test_each_epoch_is_reshuffled_and_resuming_keeps_every_epochs_order(group_by_length, pages, micro_model_dir, tmp_path):
    # 20 samples, batch 3: 7 steps per epoch, 3 epochs straight.
    straight = config(tmp_path, pages, micro_model_dir, "straight", group_by_length)
    fit(straight, "--trainer.max_epochs", "3", "--trainer.max_steps", "-1")
    orders = epochs_seen(tmp_path / "straight.jsonl")
    assert sorted(orders) == [0, 1, 2]
    for epoch, order in orders.items():
        assert len(order) == 20 and len({tuple(key) for key in order}) == 20
        assert order == sampler_order(pages, micro_model_dir, group_by_length, epoch)
    assert orders[0] != orders[1] != orders[2] != orders[0]

    # Stopped after epoch 0 (last.ckpt written after its last batch, or at epoch end when that
    # step is no checkpoint step), resumed to step 10 (mid-epoch 1), resumed to the end.
    for name, every in (("after_last_batch", 1), ("at_epoch_end", 2)):
        resumed = config(tmp_path, pages, micro_model_dir, name, group_by_length, every_n_train_steps=every)
        fit(resumed, "--trainer.max_epochs", "1", "--trainer.max_steps", "-1")
        fit(resumed, "--trainer.max_steps", "10", "--ckpt_path", "last")
        fit(resumed, "--trainer.max_epochs", "3", "--trainer.max_steps", "-1", "--ckpt_path", "last")
        assert epochs_seen(tmp_path / f"{name}.jsonl") == orders, name


def test_ddp_ranks_see_each_sample_once_per_epoch_and_drop_a_different_remainder(pages, micro_model_dir, tmp_path):
    # 20 samples, batch 3, 2 ranks: 7 batches per epoch, 6 usable (3 per rank), 2 samples dropped.
    path = config(tmp_path, pages, micro_model_dir, "ddp", group_by_length=False)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "got_lightning.cli",
            "fit",
            "--config",
            str(path),
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--trainer.max_epochs",
            "4",
            "--trainer.max_steps",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = read_batch_keys(tmp_path / "ddp.jsonl.rank0") + read_batch_keys(tmp_path / "ddp.jsonl.rank1")
    dropped = []
    for epoch in range(4):
        keys = [tuple(key) for row in rows if row["epoch"] == epoch for key in row["keys"]]
        assert len(keys) == 18 and len(set(keys)) == 18
        dropped.append(frozenset(("digits", i) for i in range(20)) - set(keys))
    assert len(set(dropped)) > 1
