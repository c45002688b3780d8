"""Scan augmentation (`data.augment`): the same (seed, epoch, sample) gives the same pixels in any
process and worker, another epoch others; only the training split is augmented; bad settings and
the feature-cache combination are one line; `data show` saves and hashes what the model sees."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from got_lightning.data.images.augment import STEPS, AugmentConfigError, ScanAugmentation
from got_lightning.data.images.pixels import normalize
from tests.helpers import run_executable
from tests.training_helpers import datamodule, fit_config

AUGMENT = [{"name": "rotate", "degrees": 4, "p": 1.0}, {"name": "noise", "std": 0.1, "p": 1.0}, {"name": "ink_thicker", "p": 0.5}]


def show(config, *extra):
    result = run_executable("data", "show", "--config", str(config), "--json", *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.slow
def test_the_same_epoch_and_sample_give_the_same_pixels_in_two_processes(micro_model_dir, digit_pages, tmp_path):
    augmented = fit_config(tmp_path / "a.yaml", digit_pages, micro_model_dir, tmp_path / "run", data={"augment": AUGMENT})
    plain = fit_config(tmp_path / "p.yaml", digit_pages, micro_model_dir, tmp_path / "run")
    first = show(augmented, "--index", "2", "--epoch", "0")["pixel_sha256"]
    assert show(augmented, "--index", "2", "--epoch", "0")["pixel_sha256"] == first
    assert show(augmented, "--index", "2", "--epoch", "1")["pixel_sha256"] != first
    assert show(augmented, "--index", "3", "--epoch", "0")["pixel_sha256"] != first
    assert show(plain, "--index", "2", "--epoch", "0")["pixel_sha256"] != first


def epoch_pixels(module, epoch):
    loader = module.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return {tuple(key): pixels for batch in loader for key, pixels in zip(batch["keys"], batch["pixel_values"])}


def test_two_workers_read_the_pixels_one_process_reads_and_epochs_differ(micro_model_dir, digit_pages):
    alone = datamodule(digit_pages, micro_model_dir, augment=AUGMENT, val_fraction=0.2)
    workers = datamodule(digit_pages, micro_model_dir, augment=AUGMENT, val_fraction=0.2, num_workers=2)
    for module in (alone, workers):
        module.setup("fit")
    for epoch in (0, 1):
        ours, theirs = epoch_pixels(alone, epoch), epoch_pixels(workers, epoch)
        assert ours.keys() == theirs.keys() and len(ours) > 10
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
    workers.teardown("fit")
    first, second = epoch_pixels(alone, 0), epoch_pixels(alone, 1)
    assert sum(not torch.equal(first[key], second[key]) for key in first) == len(first)


def test_held_out_and_predict_pages_are_never_augmented(micro_model_dir, digit_pages):
    augmented = datamodule(
        digit_pages, micro_model_dir, augment=AUGMENT, val_fraction=0.2, predict_input=str(digit_pages / "images")
    )
    plain = datamodule(digit_pages, micro_model_dir, val_fraction=0.2, predict_input=str(digit_pages / "images"))
    for module in (augmented, plain):
        module.setup("fit")
    assert len(augmented.val_dataset) > 0
    for item in range(len(augmented.val_dataset)):
        assert torch.equal(augmented.val_dataset[item]["pixel_values"], plain.val_dataset[item]["pixel_values"])
    ours, theirs = augmented.predict_dataset(), plain.predict_dataset()
    for item in range(len(ours)):
        assert torch.equal(ours[item]["pixel_values"], theirs[item]["pixel_values"])
    assert not torch.equal(augmented.train_dataset[(0, 0)]["pixel_values"], plain.train_dataset[0]["pixel_values"])


@pytest.mark.parametrize("name", sorted(STEPS))
def test_every_augmentation_changes_the_page_and_keeps_its_ink_in_view(name):
    page = np.full((3, 80, 120), 255, dtype=np.uint8)
    page[:, 2:20, 2:118] = 0  # a line of ink touching the page's edges
    augmentation = ScanAugmentation([{"name": name, "p": 1.0}], seed=0)
    changed = augmentation.for_sample(0, "pages", 0)(torch.from_numpy(page)).numpy()
    assert changed.dtype == np.uint8 and changed.shape[0] == 3
    assert changed.shape != page.shape or not np.array_equal(changed, page), f"{name} left the page as it was"


@pytest.mark.parametrize(
    "step", [{"name": "rotate", "degrees": 6}, {"name": "skew", "degrees": 6}, {"name": "perspective", "scale": 0.08}]
)
def test_turns_skews_and_perspective_keep_the_page_corners_in_view(step):
    """Ink in the page's four corners is still there after the move: text pushed out of the frame
    would no longer match its transcription."""
    page = np.full((3, 120, 160), 255, dtype=np.uint8)
    for rows, columns in (
        (slice(0, 8), slice(0, 8)),
        (slice(0, 8), slice(-8, None)),
        (slice(-8, None), slice(0, 8)),
        (slice(-8, None), slice(-8, None)),
    ):
        page[:, rows, columns] = 0
    for seed in range(5):
        changed = ScanAugmentation([{**step, "p": 1.0}], seed=seed).for_sample(0, "pages", seed)(torch.from_numpy(page)).numpy()
        assert (np.abs(changed[0].astype(int) - changed[2]) <= 2).all(), (
            "a grey page stays grey: the uncovered canvas is white paper"
        )
        dark = changed.mean(axis=0) < 128
        height, width = dark.shape
        quadrants = [
            dark[: height // 2, : width // 2],
            dark[: height // 2, width // 2 :],
            dark[height // 2 :, : width // 2],
            dark[height // 2 :, width // 2 :],
        ]
        assert all(quadrant.sum() >= 0.5 * 64 for quadrant in quadrants), (step, seed)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "rotation"}, "unknown augmentation 'rotation'"),
        ({"name": "rotate", "angle": 2}, "unknown parameter 'angle'"),
        ({"name": "blur", "p": 2}, "p is a probability"),
        ({"name": "noise", "std": "a lot"}, "std must be a number"),
    ],
)
def test_a_bad_entry_is_named(entry, message):
    with pytest.raises(AugmentConfigError, match=message):
        ScanAugmentation([{"name": "jpeg"}, entry])


@pytest.mark.slow
def test_bad_settings_and_the_feature_cache_combination_are_one_line(micro_model_dir, digit_pages, tmp_path):
    bad = fit_config(tmp_path / "b.yaml", digit_pages, micro_model_dir, tmp_path / "b", data={"augment": [{"name": "rotation"}]})
    result = run_executable("fit", "--config", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "data.augment[0]: unknown augmentation 'rotation'" in result.stderr.strip().splitlines()[-1]

    cached = fit_config(
        tmp_path / "c.yaml",
        digit_pages,
        micro_model_dir,
        tmp_path / "c",
        data={"augment": AUGMENT},
        model={"cache_vision_features": True},
    )
    result = run_executable("fit", "--config", str(cached))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "model.cache_vision_features" in last and "data.augment" in last
    assert not (tmp_path / "c" / "checkpoints").exists()


def test_data_show_saves_what_the_model_sees(micro_model_dir, digit_pages, tmp_path):
    config = fit_config(tmp_path / "a.yaml", digit_pages, micro_model_dir, tmp_path / "run", data={"augment": AUGMENT})
    shown = show(config, "--index", "1", "--epoch", "3", "--save", str(tmp_path / "page.png"))
    saved = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    assert saved.shape == (64, 64, 3)  # the micro model's one 64-px tile
    module = datamodule(digit_pages, micro_model_dir, augment=AUGMENT, val_fraction=0.2)
    module.setup("fit")
    fed = module.train_dataset.build(1, epoch=3)["pixel_values"]
    # The PNG holds the 8-bit pixels the normalized tensor came from.
    assert torch.allclose(normalize(torch.from_numpy(saved).permute(2, 0, 1)), fed[0], atol=1e-4)
    assert shown["pixel_values_shape"] == list(fed.shape)
