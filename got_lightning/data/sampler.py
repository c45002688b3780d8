"""Batch samplers: shuffled or length-grouped training batches, sharded per rank, deterministic per epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from got_lightning.core.errors import SettingError


class TrainBatchSampler:
    """Yields this rank's batches of dataset indices (or `(index, epoch)` pairs) for one epoch.

    Order depends only on (seed, epoch), so a resumed loader can fast-forward to any batch. With
    `group_by_length`, indices are shuffled, cut into mega-batches of `batch_size x world x
    group_size`, sorted by length inside each, cut into batches and the batches shuffled again:
    similar lengths share a batch, yet the epoch stays random. Every rank gets the same number of
    batches (the shortfall of an uneven last round is dropped; it is reshuffled next epoch) and no
    index appears on two ranks.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        group_by_length: bool = False,
        group_size: int = 64,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        tag_epoch: bool = False,
    ) -> None:
        if batch_size < 1:
            raise SettingError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.group_size = group_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.tag_epoch = tag_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        self.epoch = epoch

    def _global_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        count = len(self.lengths)
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        if self.group_by_length:
            span = self.batch_size * self.num_replicas * self.group_size
            order = (
                np.concatenate(
                    [
                        chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                        for chunk in np.split(order, range(span, count, span))
                    ]
                )
                if count
                else order
            )
        batches = [order[i : i + self.batch_size] for i in range(0, count, self.batch_size)]
        if batches and self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.group_by_length and self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int] | list[tuple[int, int]]]:
        """This rank's batches; with `tag_epoch`, each index paired with the epoch, so that a
        dataset in a worker process (which never sees `set_epoch`) knows it."""
        batches = self._global_batches()
        usable = len(batches) - len(batches) % self.num_replicas
        for batch in batches[self.rank : usable : self.num_replicas]:
            yield [(index, self.epoch) for index in batch.tolist()] if self.tag_epoch else batch.tolist()

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        total = full + (1 if rest and not self.drop_last else 0)
        return total // self.num_replicas


class ShardSampler:
    """Evaluation order: every index once, in order, rank r taking r, r + world, ... (no padding)."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.size = size
        self.num_replicas = num_replicas
        self.rank = rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))
