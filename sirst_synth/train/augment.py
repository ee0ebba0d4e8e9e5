"""Training-time geometry: padded crops (half of them holding a target), flips, transpose.

Pure numpy: the per-image reference of the batched device path. The random draw
(:func:`draw_view`, :func:`view_from_uniforms`) is separate from its application
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

    Seven uniforms from ``rng`` decide it; see :func:`view_from_uniforms`.
    """
    centres = [(t.cy, t.cx) for t in find_targets(mask)]
    return view_from_uniforms(rng.random(UNIFORMS_PER_VIEW), centres, mask.shape, crop)


#: uniforms in [0, 1) that decide one view: force, target, top, left, flip_v, flip_h, transpose.
UNIFORMS_PER_VIEW = 7


def view_from_uniforms(
    u: np.ndarray, centres: list[tuple[int, int]], shape: tuple[int, int], crop: int
) -> View:
    """The view of an image of ``shape`` (H, W) with target centres ``centres`` decided by ``u``.

    Images smaller than ``crop`` are padded at the bottom and right (see :func:`apply_view`).
    When ``u[0] < 1/2`` and the image has a target, the window holds a target's centre (target
    ``int(u[1] * n)``, its position in the window ``int(u[2] * crop)``, ``int(u[3] * crop)``
    from the window's top and left, clipped to the image); otherwise the window is uniform over
    the padded image (``int(u[2] * (H - crop + 1))``, ...). ``u[4:7] < 1/2``: flips, transpose.
    The device-resident loader (:class:`sirst_synth.train.data.DeviceData`) computes the same
    thing batched.
    """
    h, w = max(shape[0], crop), max(shape[1], crop)
    force, u_target, u_top, u_left = (float(x) for x in u[:4])
    flip_v, flip_h, transpose = (bool(x < 0.5) for x in u[4:7])
    if force < TARGET_CROP_PROBABILITY and centres:
        cy, cx = centres[min(int(u_target * len(centres)), len(centres) - 1)]
        # top in [cy - crop + 1, cy], clipped to the image: the window keeps row cy
        top = int(np.clip(cy - int(u_top * crop), 0, h - crop))
        left = int(np.clip(cx - int(u_left * crop), 0, w - crop))
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
