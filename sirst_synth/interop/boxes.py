"""Targets as boxes and centroids: the 8-connected components of ``mask > 0`` (docs/method.md section 1)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Component:
    """One target: label (OpenCV's order), pixel box, area and centroid.

    The box covers pixel columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``; ``cx``/``cy`` are
    the exact centroid, ``col``/``row`` the centroid rounded half up (docs/method.md section 1's target centre).
    """

    label: int
    x: int
    y: int
    w: int
    h: int
    area: int
    cx: float
    cy: float

    @property
    def col(self) -> int:
        return int(np.floor(self.cx + 0.5))

    @property
    def row(self) -> int:
        return int(np.floor(self.cy + 0.5))


def components(mask: np.ndarray) -> list[Component]:
    """The targets of a (H, W) mask, in OpenCV's label order (as :func:`sirst_synth.method.targets.find_targets`)."""
    binary = (mask > 0).astype(np.uint8)
    n, _, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return [
        Component(
            label=i,
            x=int(stats[i, cv2.CC_STAT_LEFT]), y=int(stats[i, cv2.CC_STAT_TOP]),
            w=int(stats[i, cv2.CC_STAT_WIDTH]), h=int(stats[i, cv2.CC_STAT_HEIGHT]),
            area=int(stats[i, cv2.CC_STAT_AREA]),
            cx=float(centroids[i, 0]), cy=float(centroids[i, 1]),
        )
        for i in range(1, n)
    ]


def yolo_line(c: Component, width: int, height: int, cls: int = 0) -> str:
    """``class cx cy w h``, normalised to 0..1 by the image size, 6 decimals (box edges are pixel edges)."""
    return (f"{cls} {(c.x + c.w / 2) / width:.6f} {(c.y + c.h / 2) / height:.6f} "
            f"{c.w / width:.6f} {c.h / height:.6f}")


def voc_box(c: Component) -> tuple[int, int, int, int]:
    """VOC ``xmin, ymin, xmax, ymax``: 1-based, inclusive pixel indices (the VOC devkit convention)."""
    return c.x + 1, c.y + 1, c.x + c.w, c.y + c.h


def coco_box(c: Component) -> list[int]:
    """COCO ``[x, y, width, height]`` in pixels, 0-based, box edges on pixel edges."""
    return [c.x, c.y, c.w, c.h]
