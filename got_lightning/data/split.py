"""Deterministic held-out split from a hash of the image reference."""

from __future__ import annotations

import hashlib

import numpy as np


def split_point(image_key: str) -> float:
    """A stable number in [0, 1) for an image: the same on every run, machine and record order."""
    digest = hashlib.blake2b(image_key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_held_out(image_key: str, val_fraction: float) -> bool:
    """Whether the image belongs to the held-out split at this fraction."""
    return split_point(image_key) < val_fraction


def split_positions(
    split_points: np.ndarray, val_fraction: float, held_out_points: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out record positions of one annotation file (bad records, NaN, in neither).

    With `held_out_points` (from a separate validation file) nothing is held out by fraction, and
    train records showing an image of the validation file are left out of training.
    """
    valid = ~np.isnan(split_points)
    if held_out_points is not None:
        in_val_file = np.isin(split_points, held_out_points[~np.isnan(held_out_points)])
        return np.flatnonzero(valid & ~in_val_file), np.empty(0, dtype=np.int64)
    held_out = valid & (split_points < val_fraction)
    return np.flatnonzero(valid & ~held_out), np.flatnonzero(held_out)


def repeat_positions(positions: np.ndarray, split_points: np.ndarray, repeat: float) -> np.ndarray:
    """Each position `floor(repeat)` times, plus a fixed hash-chosen share for the fraction left."""
    whole, fraction = int(repeat), repeat - int(repeat)
    parts = [positions] * whole
    if fraction > 0:
        # Reuse the split hash, rescaled, so the extra share does not correlate with the split.
        chosen = (split_points[positions] * 1_000_003) % 1.0 < fraction
        parts.append(positions[chosen])
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
