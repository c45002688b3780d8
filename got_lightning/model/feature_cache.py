"""A frozen vision tower's outputs, computed once per tile and reused (in memory or on disk).

Entries are keyed by a hash of the tile's pixel values and a fingerprint of the tower's weights:
a changed image, image mode, tile grid or model can never hit a stale entry.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from got_lightning.core.atomic_files import atomic_write

log = logging.getLogger(__name__)


@dataclass
class FeatureCacheArgs:
    """Where and how much of the frozen tower's output to keep.

    Args:
        directory: Keep entries on disk here (shared by ranks and runs); None keeps them in memory.
        max_gb: Size bound. In memory the least recently used entries are evicted; on disk no new
            entries are written once it is reached.
    """

    directory: str | None = None
    max_gb: float = 4.0


def _hash_tensor(digest, tensor: torch.Tensor, name: str = "") -> None:
    digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
    digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())


def tower_fingerprint(tower: torch.nn.Module) -> str:
    """A hash of the tower's weights, dtypes and shapes."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(tower.state_dict().items()):
        _hash_tensor(digest, tensor, name)
    return digest.hexdigest()


def tile_key(tile: torch.Tensor) -> str:
    """A hash of one tile's pixel values (its dtype and shape included)."""
    digest = hashlib.blake2b(digest_size=20)
    _hash_tensor(digest, tile)
    return digest.hexdigest()


class VisionFeatureCache:
    """Looks tiles up, computes the misses in one call, stores them; counts hits and misses."""

    def __init__(self, fingerprint: str, args: FeatureCacheArgs | None = None) -> None:
        args = args or FeatureCacheArgs()
        self.max_bytes = int(args.max_gb * 2**30)
        self.directory = Path(args.directory) / fingerprint if args.directory else None
        self.fingerprint = fingerprint
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.memory_bytes = 0
        self.disk_bytes = 0
        self.hits = 0
        self.misses = 0
        self._disk_full_reported = False
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.disk_bytes = sum(path.stat().st_size for path in self.directory.glob("*.safetensors"))

    def features(self, pixel_values: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The tower output of every tile in `pixel_values`, in order, from the cache where possible."""
        keys = [tile_key(tile) for tile in pixel_values]
        found = [self._get(key) for key in keys]
        missing = [row for row, entry in enumerate(found) if entry is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = compute(pixel_values[missing])
            for row, features in zip(missing, computed):
                found[row] = features
                self._put(keys[row], features)
        features = torch.stack([entry.to(pixel_values.device) for entry in found])
        # The tower hands out NHWC memory viewed as NCHW; the same layout keeps the projector's
        # arithmetic, and so the loss and gradients, bit for bit those of an uncached run.
        return features.contiguous(memory_format=torch.channels_last) if features.dim() == 4 else features

    def _get(self, key: str) -> torch.Tensor | None:
        if self.directory is not None:
            path = self.directory / f"{key}.safetensors"
            return load_file(path)["features"] if path.is_file() else None
        entry = self.memory.get(key)
        if entry is not None:
            self.memory.move_to_end(key)
        return entry

    def _put(self, key: str, features: torch.Tensor) -> None:
        features = features.detach().cpu().contiguous().clone()
        size = features.numel() * features.element_size()
        if self.directory is None:
            self.memory[key] = features
            self.memory_bytes += size
            while self.memory_bytes > self.max_bytes and self.memory:
                _, evicted = self.memory.popitem(last=False)
                self.memory_bytes -= evicted.numel() * evicted.element_size()
            return
        if self.disk_bytes + size > self.max_bytes:
            if not self._disk_full_reported:
                log.warning(
                    "vision feature cache %s reached its %.1f GB bound; new tiles are not stored",
                    self.directory,
                    self.max_bytes / 2**30,
                )
                self._disk_full_reported = True
            return
        path = self.directory / f"{key}.safetensors"
        atomic_write(path, lambda handle: handle.write(save({"features": features})), durable=False)
        self.disk_bytes += path.stat().st_size
