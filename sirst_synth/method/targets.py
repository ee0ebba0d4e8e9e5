"""Targets: 8-connected components of ``mask > 0`` and their rounded centroids (docs/method.md section 1)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Target:
    """One target: its component label (1, 2, ... in label order), centre (row, col) and area."""

    label: int
    cy: int
    cx: int
    area: int


def find_targets(mask: np.ndarray) -> list[Target]:
    """Targets of a (H, W) mask, in OpenCV's label order.

    That order is deterministic but is not the raster order of each target's first pixel: the
    8-connected labelling scans 2x2 blocks, so labels follow the raster order of (row // 2, col // 2).

    The centre is the component's centroid rounded half up to the nearest pixel.
    """
    binary = (mask > 0).astype(np.uint8)
    n, _, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return [
        Target(
            label=label,
            cy=int(np.floor(centroids[label, 1] + 0.5)),
            cx=int(np.floor(centroids[label, 0] + 0.5)),
            area=int(stats[label, cv2.CC_STAT_AREA]),
        )
        for label in range(1, n)
    ]
