"""Training-time geometry: padded crops (half of them holding a target), flips, transpose.

Pure numpy. The random draw (:func:`draw_view`) is separate from its application
(:func:`apply_view`): one draw is applied to an image and its mask alike, and to every member of
a group (the draw depends on the image size and on the mask only through the chosen target, so
a group's views, identical but for a rotated 3x3 window, get the same crop up to a pixel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sirst_synth.method.targets import find_targets

#: probability that a crop is placed to hold a target (when the image has one).
TARGET_CROP_PROBABILITY = 0.5


@dataclass(frozen=True)
class View:
    """Where to crop (top, left) a crop x crop window of the padded image, then flips, transpose."""

    top: int
    left: int
    crop: int
    flip_v: bool
    flip_h: bool
    transpose: bool


def draw_view(rng: np.random.Generator, mask: np.ndarray, crop: int) -> View:
    """Draw one view of an (H, W) image whose target mask is ``mask`` (non-zero = target).

    Images smaller than ``crop`` are padded at the bottom and right (see :func:`apply_view`).
    With probability 1/2, and when the mask has a target, the window holds a target's centre
    (a target drawn uniformly, its position in the window uniform); otherwise the window is
    uniform over the padded image.
    """
    h, w = max(mask.shape[0], crop), max(mask.shape[1], crop)
    force, u_target, u_top, u_left = rng.random(4)
    flip_v, flip_h, transpose = (rng.random(3) < 0.5).tolist()
    targets = find_targets(mask) if force < TARGET_CROP_PROBABILITY else []
    if targets:
        t = targets[int(u_target * len(targets))]
        # top in [cy - crop + 1, cy], clipped to the image: the window keeps row cy
        top = int(np.clip(t.cy - int(u_top * crop), 0, h - crop))
        left = int(np.clip(t.cx - int(u_left * crop), 0, w - crop))
    else:
        top = int(u_top * (h - crop + 1))
        left = int(u_left * (w - crop + 1))
    return View(top, left, crop, flip_v, flip_h, transpose)


def apply_view(arr: np.ndarray, view: View, fill: float = 0.0) -> np.ndarray:
    """Pad ``arr`` (H, W) at bottom/right with ``fill`` up to the crop, crop, flip, transpose."""
    h, w = arr.shape
    pad_h, pad_w = max(view.crop - h, 0), max(view.crop - w, 0)
    if pad_h or pad_w:
        arr = np.pad(arr, ((0, pad_h), (0, pad_w)), constant_values=fill)
    out = arr[view.top:view.top + view.crop, view.left:view.left + view.crop]
    if view.flip_v:
        out = out[::-1]
    if view.flip_h:
        out = out[:, ::-1]
    if view.transpose:
        out = out.T
    return np.ascontiguousarray(out)


def pad_to_multiple(arr: np.ndarray, multiple: int, fill: float = 0.0) -> np.ndarray:
    """Pad (H, W) at bottom/right with ``fill`` so both sides are multiples of ``multiple``."""
    h, w = arr.shape
    pad_h, pad_w = -h % multiple, -w % multiple
    if not (pad_h or pad_w):
        return arr
    return np.pad(arr, ((0, pad_h), (0, pad_w)), constant_values=fill)
