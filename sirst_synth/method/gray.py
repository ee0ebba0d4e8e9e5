"""The gray image the method computes on (docs/method.md section 1.1), from a decoded uint8 gray or
RGB image: the image itself, the channel of an R=G=B image (exact), else the ITU-R 601 gray.

:func:`method_gray` is what every stage, the scan and the transforms compute on (float for a
colour image, so it is rounded once, after mixing); :func:`rounded_gray` is it rounded to uint8;
:func:`float_gray` is it as float32 (the trainer's input).
"""
from __future__ import annotations

import numpy as np


def method_gray(image: np.ndarray) -> np.ndarray:
    """The gray image the method computes on (docs/method.md sections 1.1-3), from uint8 gray or RGB: uint8
    (H, W) for a gray image and for the channel of an R=G=B one (exact), else float32
    :func:`float_gray` (ITU-R 601 weights), so that a colour source is rounded once, after mixing."""
    if image.ndim == 2:
        return image
    r = image[..., 0]
    if np.array_equal(r, image[..., 1]) and np.array_equal(r, image[..., 2]):
        return np.ascontiguousarray(r)
    return float_gray(image)


def rounded_gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) gray from uint8 gray or RGB, or from a float :func:`method_gray`: the image
    itself, the channel of an R=G=B image, else the 601 gray rounded to nearest."""
    gray = method_gray(image) if image.dtype == np.uint8 else image
    if gray.dtype == np.uint8:
        return gray
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def float_gray(image: np.ndarray) -> np.ndarray:
    """float32 (H, W) gray, 0..255, from uint8 gray or RGB.

    An RGB image with R = G = B (gray stored as RGB, as in NUDT-SIRST) gives its channel exactly;
    other colour images use the ITU-R 601 weights.
    """
    if image.ndim == 2:
        return image.astype(np.float32)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return r.astype(np.float32)
    return (0.299 * r + 0.587 * g + 0.114 * b).astype(np.float32)
