"""Noise sampling: the noise-prone regions of an image (docs/method.md section 2). Pure functions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NoiseRegion:
    """A kept grid region: its grid position, pixel box (y0, x0, y1, x1), variance and mean."""

    row: int
    col: int
    box: tuple[int, int, int, int]
    var: float
    mean: float


def grid_boxes(height: int, width: int, grid: int) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """All ``grid x grid`` regions of ``floor(h/g) x floor(w/g)`` pixels as (row, col, box)."""
    rh, rw = height // grid, width // grid
    if rh < 1 or rw < 1:
        raise ValueError(f"a {grid}x{grid} grid does not fit a {height}x{width} image")
    return [
        (r, c, (r * rh, c * rw, (r + 1) * rh, (c + 1) * rw)) for r in range(grid) for c in range(grid)
    ]


def noise_prone_regions(
    gray: np.ndarray, mask: np.ndarray, grid: int = 8, max_var: float = 50.0, max_mean: float = 255.0
) -> list[NoiseRegion]:
    """Regions with ``0 < var < max_var``, ``0 < mean < max_mean`` and no target pixel, in grid order.

    ``gray`` is float (H, W) 0..255; ``mask`` (H, W) with target pixels > 0. Variance is the
    population variance (ddof 0), computed in float64. All regions are measured at once, each
    with the same float64 operations as ``region.mean()`` and ``region.var()`` of its own pixels,
    so the values are those, bit for bit.
    """
    height, width = gray.shape[:2]
    boxes = grid_boxes(height, width, grid)
    rh, rw = height // grid, width // grid
    # (grid * grid, rh * rw): each region's pixels, row-major, one region per row
    blocks = np.ascontiguousarray(
        gray[: grid * rh, : grid * rw].astype(np.float64).reshape(grid, rh, grid, rw).swapaxes(1, 2)
    ).reshape(grid * grid, rh * rw)
    targets = (mask[: grid * rh, : grid * rw] > 0).reshape(grid, rh, grid, rw).any(axis=(1, 3)).ravel()
    means = blocks.sum(axis=1) / blocks.shape[1]
    deviations = blocks - means[:, None]
    np.multiply(deviations, deviations, out=deviations)
    variances = deviations.sum(axis=1) / blocks.shape[1]
    keep = ~targets & (variances > 0) & (variances < max_var) & (means > 0) & (means < max_mean)
    return [NoiseRegion(row, col, box, float(variances[k]), float(means[k]))
            for k, (row, col, box) in enumerate(boxes) if keep[k]]


def crop(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The float32 patch of ``gray`` inside ``box`` (y0, x0, y1, x1)."""
    y0, x0, y1, x1 = box
    return np.ascontiguousarray(gray[y0:y1, x0:x1], dtype=np.float32)
