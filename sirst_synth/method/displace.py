"""Noise2Noise displacement: ``I_mix = alpha * N + (1 - alpha) * I`` (docs/method.md section 3). Pure functions."""
from __future__ import annotations

import cv2
import numpy as np

from sirst_synth.method.choices import FITS


def fit_noise(patch: np.ndarray, height: int, width: int, fit: str = "resize") -> np.ndarray:
    """Noise field N of (height, width) float32 from a gray patch.

    ``resize``: bilinear (``cv2.INTER_LINEAR``); ``tile``: the patch repeated, keeping its grain.
    """
    patch = np.asarray(patch, dtype=np.float32)
    if fit == "resize":
        return cv2.resize(patch, (width, height), interpolation=cv2.INTER_LINEAR)
    if fit == "tile":
        reps = (-(-height // patch.shape[0]), -(-width // patch.shape[1]))
        return np.ascontiguousarray(np.tile(patch, reps)[:height, :width])
    raise ValueError(f"fit must be one of {FITS}, got {fit!r}")


def mix(image: np.ndarray, noise: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * N + (1 - alpha) * I`` in float32, rounded to nearest (``np.rint``), clipped, uint8.

    ``image`` is the gray image the method computes on: uint8 (H, W), or float32 (H, W) for the
    gray of a colour source (rounded once, here). A (H, W, C) image also works: the gray
    ``noise`` (H, W) is applied to every channel, so the output keeps the image's layout.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    a = np.float32(alpha)
    n = noise if image.ndim == 2 else noise[..., None]
    mixed = a * n.astype(np.float32) + (np.float32(1) - a) * image.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def displace(image: np.ndarray, patch: np.ndarray, alpha: float, fit: str = "resize") -> np.ndarray:
    """Mix ``patch``, fitted to the image's size, into ``image``."""
    return mix(image, fit_noise(patch, image.shape[0], image.shape[1], fit), alpha)
