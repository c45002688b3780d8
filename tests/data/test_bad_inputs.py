"""Every kind of bad input is named (dataset, record, image, reason), skipped and counted, or fatal in strict mode."""

import os

import pytest

from got_lightning.data.collate import Collator
from got_lightning.data.config import DatasetSpec
from got_lightning.data.datamodule import GotDataModule
from got_lightning.data.dataset import StrictModeError
from tests.helpers import record, text_page, write_json


@pytest.fixture
def dataset_dir(tmp_path):
    root = tmp_path / "ds"
    text_page(root / "good.png")
    (root / "empty.png").write_bytes(b"")
    (root / "notimage.jpg").write_text("this is text, not a JPEG")
    full = text_page(root / "full.jpg", size=(400, 400)).read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    text_page(root / "bomb.png", size=(2000, 1000))
    text_page(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "link.png")
    (root / "tiles").mkdir()
    text_page(root / "tiles" / "0.png")
    text_page(root / "tiles" / "1.png")
    return root


CASES = [
    (record("good.png"), None),
    (record("missing.png"), "image file not found"),
    (record("empty.png"), "empty (0 bytes)"),
    (record("notimage.jpg"), "not an image"),
    (record("truncated.jpg"), "truncated or corrupt"),
    (record("bomb.png"), "decompression bomb"),
    (record("../outside.png"), "escapes image_root"),
    (record("link.png"), "escapes image_root"),
    (record("/etc/hostname"), "escapes image_root"),
    ({"conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]}, "no 'image'"),
    (record("good.png", answer=" "), "empty answer"),
    (record("good.png", answer="word " * 3000), "over-length"),
    (record("tiles"), None),
]


def module(root, strict=False, **overrides):
    annotations = write_json(root / "ann.json", [raw for raw, _ in CASES])
    return GotDataModule(
        datasets=[DatasetSpec(name="guji", annotations=str(annotations), image_root=str(root))],
        image_mode="resize",
        max_image_pixels=1_500_000,
        model_max_length=2048,
        strict=strict,
        **overrides,
    )


def test_each_bad_input_is_named_and_skipped(dataset_dir):
    dm = module(dataset_dir)
    dm.setup("fit")
    dataset = dm.train_dataset
    found = {problem.index: problem for problem in dm.index_problems}
    for item in range(len(dataset)):
        sample = dataset[item]
        if "problem" in sample:
            found[sample["problem"].index] = sample["problem"]
    for position, (_, reason) in enumerate(CASES):
        if reason is None:
            assert position not in found
        else:
            assert found[position].dataset == "guji" and reason in found[position].reason, (position, found.get(position))
    assert found[1].image == "missing.png"
    batch = Collator()([dataset[i] for i in range(len(dataset))])
    assert batch["size"] == 2 and len(batch["problems"]) == len(dataset) - 2
    assert batch["pixel_values"].shape[0] == 1 + 2  # the page, then both pre-cut tiles


def test_outside_root_allowed_on_request(dataset_dir):
    dm = module(dataset_dir, allow_outside_root=True)
    dm.setup("fit")
    keys = {dm.train_dataset[i].get("key") for i in range(len(dm.train_dataset))}
    assert ("guji", 6) in keys and ("guji", 7) in keys


def test_strict_mode_fails_fast(dataset_dir):
    with pytest.raises(StrictModeError, match="record 9.*no 'image'"):
        module(dataset_dir, strict=True).setup("fit")
