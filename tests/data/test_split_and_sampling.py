import random

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from torchdata.stateful_dataloader import StatefulDataLoader

from got_lightning.data.annotations.index import build_index
from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.sampler import TrainBatchSampler
from got_lightning.data.split import split_positions
from tests.helpers import record, write_json, write_jsonl


def held_out_images(path):
    index = build_index(path, "d")
    _, val = split_positions(index.split_points, 0.2)
    return {index.read(int(p))["image"] for p in val}


def test_split_is_stable_across_order_and_format(tmp_path):
    records = [record(f"images/{i:04d}.jpg") for i in range(500)]
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    first = held_out_images(write_json(tmp_path / "a.json", records))
    assert first == held_out_images(write_jsonl(tmp_path / "b.jsonl", shuffled))
    assert 60 < len(first) < 140
    # the same image written differently is the same image
    assert held_out_images(write_json(tmp_path / "c.json", [record(f"./images//{i:04d}.jpg") for i in range(500)])) == {
        f"./images//{name.split('/')[-1]}" for name in first
    }


def test_same_image_never_in_both_splits(tmp_path):
    records = [record(f"images/{i % 50}.jpg", answer=f"a{i}") for i in range(400)]
    dm = GotDataModule(datasets=[DatasetSpec("d", str(write_json(tmp_path / "a.json", records)))], val_fraction=0.3)
    dm.setup("fit")
    train = {dm.train_dataset.sources[0].index.read(int(p))["image"] for _, p in dm.train_dataset.entries}
    val = {dm.val_dataset.sources[0].index.read(int(p))["image"] for _, p in dm.val_dataset.entries}
    assert train and val and not train & val
    assert len(dm.train_dataset) + len(dm.val_dataset) == 400


def test_val_annotations_file_excludes_its_images_from_training(tmp_path):
    train = write_json(tmp_path / "train.json", [record(f"{i}.jpg") for i in range(20)])
    val = write_json(tmp_path / "val.json", [record(f"{i}.jpg") for i in range(15, 25)])
    dm = GotDataModule(datasets=[DatasetSpec("d", str(train), val_annotations=str(val), repeat=2)])
    dm.setup("fit")
    assert dm.summaries[0].left_out == 5 and len(dm.val_dataset) == 10 and len(dm.train_dataset) == 30


def test_length_grouping_cuts_padding():
    lengths = np.random.default_rng(0).integers(10, 4000, 4000)

    def padding(group):
        sampler = TrainBatchSampler(lengths, batch_size=8, group_by_length=group)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(4000))
        return sum(max(lengths[b]) * len(b) - lengths[b].sum() for b in batches) / sum(max(lengths[b]) * len(b) for b in batches)

    assert padding(True) < 0.1 < padding(False)


def _shard(rank, world, path, queue_dir):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    sampler = TrainBatchSampler(
        np.arange(103), batch_size=4, seed=3, group_by_length=True, num_replicas=world, rank=dist.get_rank()
    )
    sampler.set_epoch(1)
    gathered = [None] * world
    dist.all_gather_object(gathered, list(sampler))
    if rank == 0:
        first, second = ({i for batch in batches for i in batch} for batches in gathered)
        np.save(queue_dir, np.array([len(gathered[0]), len(gathered[1]), len(first & second), len(first | second)]))
    dist.destroy_process_group()


def test_ddp_ranks_get_disjoint_equal_shards(tmp_path):
    out = tmp_path / "result.npy"
    mp.start_processes(_shard, args=(2, tmp_path / "rendezvous", out), nprocs=2, start_method="spawn")
    batches_first, batches_second, overlap, union = np.load(out)
    # Same number of batches on each rank (no DDP hang), nothing shared; an uneven last round is dropped.
    assert batches_first == batches_second == 13 and overlap == 0 and union == 103


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_resumes_mid_epoch_with_exactly_the_remaining_samples(workers):
    dataset = list(range(57))

    def loader():
        sampler = TrainBatchSampler(np.arange(57), batch_size=5, seed=7, group_by_length=True, group_size=2)
        sampler.set_epoch(2)
        return StatefulDataLoader(dataset, batch_sampler=sampler, num_workers=workers)

    full = [b.tolist() for b in loader()]
    first = loader()
    iterator = iter(first)
    seen = [next(iterator).tolist() for _ in range(4)]
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    rest = [b.tolist() for b in resumed]
    assert seen + rest == full
