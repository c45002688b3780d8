"""GOT/InternVL dynamic tiling: the grid closest to the page's aspect ratio, then a thumbnail."""

from __future__ import annotations

import functools

import torch

from got_lightning.data.images.resample import resize_bicubic


@functools.lru_cache(maxsize=64)
def candidate_grids(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    """(columns, rows) grids with min..max tiles, fewest tiles first."""
    grids = [
        (columns, rows)
        for columns in range(1, max_tiles + 1)
        for rows in range(1, max_tiles + 1)
        if min_tiles <= columns * rows <= max_tiles
    ]
    return tuple(sorted(grids, key=lambda grid: grid[0] * grid[1]))


def tile_grid(width: int, height: int, tile_size: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """The (columns, rows) grid for a page. Ties in aspect ratio go to more tiles while the page
    area exceeds half of the grid's area, so small pages are not blown up."""
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for grid in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best, best_diff = grid, diff
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * grid[0] * grid[1]:
            best = grid
    return best


def cut_tiles(page: torch.Tensor, grid: tuple[int, int], tile_size: int) -> list[torch.Tensor]:
    """Resize uint8 pixels `(3, H, W)` onto the grid and cut them row by row; add a whole-page
    thumbnail when the grid has more than one tile."""
    columns, rows = grid
    canvas = resize_bicubic(page, columns * tile_size, rows * tile_size)
    tiles = [
        canvas[:, r * tile_size : (r + 1) * tile_size, c * tile_size : (c + 1) * tile_size]
        for r in range(rows)
        for c in range(columns)
    ]
    if len(tiles) > 1:
        tiles.append(resize_bicubic(page, tile_size, tile_size))
    return tiles
