"""The frozen-encoder feature cache: identical losses and weights, hits from the second epoch on,
never a stale entry after a change of model or image mode, bounded size."""

import pytest
import torch

from got_lightning.data.collate import Collator
from got_lightning.model.feature_cache import FeatureCacheArgs, VisionFeatureCache, tower_fingerprint
from got_lightning.model.loading import init_model_dir
from got_lightning.module import GotLightningModule
from tests.training_helpers import datamodule, trainer


def first_batch(pages, model_dir, **options):
    data = datamodule(pages, model_dir, batch_size=4, **options)
    data.setup("fit")
    return Collator()([data.train_dataset[i] for i in range(4)])


def test_cached_loss_equals_uncached_loss_on_every_pass(micro_model_dir, digit_pages):
    batch = first_batch(digit_pages, micro_model_dir)
    plain = GotLightningModule(str(micro_model_dir))
    cached = GotLightningModule(str(micro_model_dir), cache_vision_features=True)
    expected = plain.loss_sum(batch)[0]
    for _ in range(2):
        assert torch.equal(cached.loss_sum(batch)[0], expected)
    tiles = batch["pixel_values"].shape[0]
    assert (cached.feature_cache.misses, cached.feature_cache.hits) == (tiles, tiles)


@pytest.mark.slow
def test_two_epochs_with_the_cache_end_with_the_same_weights(micro_model_dir, digit_pages, tmp_path):
    weights = {}
    for cache in (False, True):
        torch.manual_seed(0)
        module = GotLightningModule(str(micro_model_dir), cache_vision_features=cache, learning_rate=1e-3)
        data = datamodule(digit_pages, micro_model_dir)
        trainer(tmp_path / str(cache), max_epochs=2, max_steps=-1).fit(module, data)
        weights[cache] = {name: tensor.clone() for name, tensor in module.state_dict().items()}
    cache, tiles_per_epoch = module.feature_cache, len(data.train_dataset)
    # Epoch 1 computes each distinct tile once (equal pages share an entry); epoch 2 computes none.
    assert cache.hits + cache.misses == 2 * tiles_per_epoch
    assert 0 < cache.misses <= tiles_per_epoch <= cache.hits
    for name, tensor in weights[False].items():
        assert torch.equal(weights[True][name], tensor), name


@pytest.mark.slow
def test_another_model_or_image_mode_never_reads_stale_features(micro_model_dir, digit_pages, tmp_path):
    shared = {"directory": str(tmp_path / "cache")}
    other_dir = init_model_dir("micro", tmp_path / "other", seed=1)
    batch = first_batch(digit_pages, micro_model_dir)
    first = GotLightningModule(str(micro_model_dir), cache_vision_features=True, feature_cache=shared)
    first.loss_sum(batch)
    other = GotLightningModule(str(other_dir), cache_vision_features=True, feature_cache=shared)
    plain_other = GotLightningModule(str(other_dir))
    assert torch.equal(other.loss_sum(batch)[0], plain_other.loss_sum(batch)[0])
    assert other.feature_cache.hits == 0

    padded = first_batch(digit_pages, micro_model_dir, image_mode="pad")
    again = GotLightningModule(str(micro_model_dir), cache_vision_features=True, feature_cache=shared)
    again.loss_sum(padded)
    assert again.feature_cache.hits == 0 and again.feature_cache.misses == padded["pixel_values"].shape[0]
    again.loss_sum(batch)
    assert again.feature_cache.hits == batch["pixel_values"].shape[0]  # read back from disk


def test_memory_cache_stays_within_its_bound():
    tower = torch.nn.Conv2d(3, 4, 2, stride=2)
    entry_bytes = 4 * 4 * 4 * 4  # (4, 4, 4) float32 per tile
    cache = VisionFeatureCache(tower_fingerprint(tower), FeatureCacheArgs(max_gb=3 * entry_bytes / 2**30))
    with torch.no_grad():
        for seed in range(5):
            tiles = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(cache.features(tiles, tower), tower(tiles))
    assert cache.memory_bytes <= 3 * entry_bytes and len(cache.memory) == 3


def test_cache_with_a_training_tower_is_refused(micro_model_dir):
    with pytest.raises(ValueError, match="freeze_vision_tower"):
        GotLightningModule(str(micro_model_dir), cache_vision_features=True, freeze_vision_tower=False)


def test_disk_entries_are_renamed_into_place_without_a_flush_to_disk_per_tile(tmp_path, monkeypatch):
    """A cache entry lost to a power cut is recomputed: the disk cache skips the two fsyncs that cost
    a checkpoint-grade write about 10x a plain one per tile (1.4 vs 0.14 ms for 512 KB here)."""
    flushes = []
    monkeypatch.setattr("os.fsync", lambda handle: flushes.append(handle))
    cache = VisionFeatureCache("fingerprint", FeatureCacheArgs(directory=str(tmp_path)))
    tiles = torch.rand(3, 3, 8, 8)
    first = cache.features(tiles, lambda pixels: pixels.mean(dim=1))
    assert flushes == [] and len(list((tmp_path / "fingerprint").glob("*.safetensors"))) == 3
    assert not list((tmp_path / "fingerprint").glob(".*"))  # nothing staged is left behind
    assert torch.equal(cache.features(tiles, lambda pixels: pixels * 0), first) and cache.hits == 3
