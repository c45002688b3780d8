"""Packed shards: `got-lightning data pack` writes a split as litdata chunks in a folder or on a real
S3 API (a local S3-compatible server), `format: litdata` reads every sample back as it was, a
resumed run sees exactly the rest, and `fit` trains from the bucket."""

import json
import os

import pytest
import torch

from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from tests.data.s3_server import create_bucket, s3_server
from tests.helpers import needs_litdata, run_executable
from tests.training_helpers import fit_config

pytestmark = pytest.mark.slow  # end-to-end runs


@pytest.fixture(autouse=True)
def litdata_installed():
    needs_litdata()


def pack(config, output, env=None, split="train"):
    result = run_executable(
        "data", "pack", "--config", str(config), "--output", str(output), "--split", split, "--chunk_mb", "0.004", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def samples(module: GotDataModule, split: str = "train") -> list[dict]:
    module.setup("fit")
    dataset = module.train_dataset if split == "train" else module.val_dataset
    return [dataset[item] for item in range(len(dataset))]


def assert_same_samples(ours: list[dict], theirs: list[dict]) -> None:
    assert len(ours) == len(theirs) > 0
    for mine, other in zip(ours, theirs):
        assert mine["images"] == other["images"]
        for key in ("input_ids", "labels", "pixel_values"):
            assert torch.equal(mine[key], other[key]), (mine["images"], key)


def packed_module(location: str, model_dir) -> GotDataModule:
    return GotDataModule(datasets=[DatasetSpec("digits", location)], model_path=str(model_dir), val_fraction=0.0)


def test_pack_then_read_back_gives_every_sample_of_both_splits(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    result = pack(config, tmp_path / "train")
    assert "packed 21 record(s) of the train split" in result.stdout.replace("\n", " ")
    pack(config, tmp_path / "val", split="val")
    assert len(list((tmp_path / "train").glob("chunk-*.bin"))) > 1  # several chunks at 4 KiB
    original = GotDataModule(
        datasets=[DatasetSpec("digits", str(digit_pages / "data.json"))], model_path=str(micro_model_dir), val_fraction=0.2
    )
    assert_same_samples(samples(packed_module(str(tmp_path / "train"), micro_model_dir)), samples(original))
    assert_same_samples(samples(packed_module(str(tmp_path / "val"), micro_model_dir)), samples(original, "val"))
    again = run_executable("data", "pack", "--config", str(config), "--output", str(tmp_path / "train"))
    assert again.returncode == 2 and "is not empty" in again.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("s3-cache")) as env:
        create_bucket(env, "scans")
        yield env


def test_pack_to_s3_and_read_back_through_the_s3_api(micro_model_dir, digit_pages, tmp_path, bucket, monkeypatch):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    pack(config, "s3://scans/digits/train", env=bucket)
    for name, value in bucket.items():
        monkeypatch.setenv(name, value)
    original = GotDataModule(
        datasets=[DatasetSpec("digits", str(digit_pages / "data.json"))], model_path=str(micro_model_dir), val_fraction=0.2
    )
    assert_same_samples(samples(packed_module("s3://scans/digits/train", micro_model_dir)), samples(original))


def test_fit_trains_from_the_bucket_mixed_with_a_local_dataset(micro_model_dir, digit_pages, tmp_path, bucket):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    pack(config, "s3://scans/mixed/train", env=bucket)
    datasets = [
        {"name": "bucket", "annotations": "s3://scans/mixed/train", "val_fraction": 0.0},
        {"name": "local", "annotations": str(digit_pages / "data.json")},
    ]
    mixed = fit_config(
        tmp_path / "m.yaml", digit_pages, micro_model_dir, tmp_path / "mixed", data={"datasets": datasets, "num_workers": 2}
    )
    result = run_executable("fit", "--config", str(mixed), "--trainer.max_steps", "3", env=bucket)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dataset 'bucket': 21 records, 0 bad, train 21, val 0" in result.stderr
    assert (tmp_path / "mixed" / "checkpoints" / "last.ckpt").is_file()


def test_a_missing_prefix_is_one_line(micro_model_dir, digit_pages, tmp_path, bucket):
    datasets = [{"name": "gone", "annotations": "s3://scans/nothing-here"}]
    config = fit_config(tmp_path / "m.yaml", digit_pages, micro_model_dir, tmp_path / "run", data={"datasets": datasets})
    result = run_executable("fit", "--config", str(config), env=bucket)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "s3://scans/nothing-here/index.json cannot be read" in result.stderr.strip().splitlines()[-1]


def test_packed_records_keep_their_conversation(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "c.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    pack(config, tmp_path / "train")
    line = json.loads((tmp_path / "train" / "got-records.jsonl").read_text().splitlines()[0])
    assert line["conversations"][1]["from"] == "gpt" and line["image_bytes"][0] == os.path.getsize(digit_pages / line["image"])
