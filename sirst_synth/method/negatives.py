"""Negative augmentation: each target's s x s centre window rotated by 90, 180, 270 degrees (docs/method.md section 4).

Pure functions. The window is centred on the target's rounded centroid and shifted inward at
borders, never shrunk. Only that one window changes, in the image and the mask alike.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sirst_synth.method.choices import ROTATIONS
from sirst_synth.method.targets import Target


def max_negatives(targets: int) -> int:
    """The most negatives an image with ``targets`` targets yields (repeats are skipped)."""
    return len(ROTATIONS) * targets


@dataclass(frozen=True)
class Negative:
    """A negative view: target, rotation k (counter-clockwise k * 90 degrees), window origin, arrays."""

    target: Target
    k: int
    y0: int
    x0: int
    image: np.ndarray
    mask: np.ndarray


def check_window_size(s: int, height: int, width: int) -> None:
    """Raise ValueError unless ``s`` is odd, >= 1 and fits the image."""
    if s < 1 or s % 2 == 0:
        raise ValueError(f"s must be odd and >= 1, got {s}")
    if s > height or s > width:
        raise ValueError(f"s={s} is larger than the {height}x{width} image")


def window_origin(cy: int, cx: int, s: int, height: int, width: int) -> tuple[int, int]:
    """Top-left corner of the s x s window centred on (cy, cx), shifted inside the image."""
    check_window_size(s, height, width)
    half = s // 2
    y0 = min(max(cy - half, 0), height - s)
    x0 = min(max(cx - half, 0), width - s)
    return y0, x0


def rotate_window(array: np.ndarray, y0: int, x0: int, s: int, k: int) -> np.ndarray:
    """A copy of ``array`` with its s x s window at (y0, x0) replaced by ``np.rot90(window, k)``."""
    out = array.copy()
    window = array[y0 : y0 + s, x0 : x0 + s]
    out[y0 : y0 + s, x0 : x0 + s] = np.rot90(window, k, axes=(0, 1))
    return out


def changing_rotations(window: np.ndarray) -> list[int]:
    """The rotations k of :data:`ROTATIONS` that change ``window`` (``np.rot90(window, k) != window``):
    the others would repeat the input (a symmetric window) and are skipped."""
    return [k for k in ROTATIONS if not np.array_equal(np.rot90(window, k, axes=(0, 1)), window)]


def _same_image(image: np.ndarray, s: int, a: tuple[int, int, np.ndarray], b: tuple[int, int, np.ndarray]) -> bool:
    """Whether ``image`` with window ``a`` pasted equals ``image`` with window ``b`` pasted.

    Each of ``a``, ``b`` is (y0, x0, s x s window). The two images can differ only inside the
    union of the windows, so only that box (at most 2s x 2s pixels) is compared.
    """
    (ya, xa, wa), (yb, xb, wb) = a, b
    if ya == yb and xa == xb:
        return np.array_equal(wa, wb)
    if abs(ya - yb) >= s or abs(xa - xb) >= s:
        return False  # disjoint windows: each image differs from the input in its own window
    top, left = min(ya, yb), min(xa, xb)
    box = image[top : max(ya, yb) + s, left : max(xa, xb) + s]
    pa, pb = box.copy(), box.copy()
    pa[ya - top : ya - top + s, xa - left : xa - left + s] = wa
    pb[yb - top : yb - top + s, xb - left : xb - left + s] = wb
    return np.array_equal(pa, pb)


def negatives(image: np.ndarray, mask: np.ndarray, targets: list[Target], s: int) -> Iterator[Negative]:
    """The distinct negatives of an image: targets in label order, k = 1, 2, 3.

    A rotation that would repeat an image already in the group (the input itself, e.g. for a
    symmetric window, or an earlier negative) is skipped, so no two views are byte-identical.
    Each negative is the input with one s x s window changed, so only windows are compared:
    a rotated window against the input's, and against the windows of earlier negatives that
    overlap it (on the union of the two windows).
    """
    height, width = image.shape[:2]
    check_window_size(s, height, width)
    kept: list[tuple[int, int, np.ndarray]] = []
    for target in targets:
        y0, x0 = window_origin(target.cy, target.cx, s, height, width)
        window = image[y0 : y0 + s, x0 : x0 + s]
        for k in changing_rotations(window):
            rotated = np.rot90(window, k, axes=(0, 1))
            candidate = (y0, x0, rotated)
            if any(_same_image(image, s, candidate, other) for other in kept):
                continue
            kept.append(candidate)
            yield Negative(target, k, y0, x0, rotate_window(image, y0, x0, s, k), rotate_window(mask, y0, x0, s, k))
