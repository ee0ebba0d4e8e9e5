"""Scores of infrared small target detection: IoU, nIoU, Pd and Fa (docs/method.md section 8).

Pure numpy and OpenCV (no torch), so any method's predicted masks can be scored. Masks are
boolean (H, W) arrays; callers binarise first (a model's logits with :func:`from_logits`,
predicted PNG masks with :func:`from_png_mask`). Images may have any size, each its own.

Definitions (BasicIRSTD's corrected ones):

- **mIoU** = 100 * sum of intersections / sum of unions over the whole dataset.
- **nIoU** = 100 * mean of the per-image IoU. An image whose ground truth and prediction are both
  empty has no IoU (0 / 0) and is left out of the mean, as it is left out of the sums of mIoU
  (it adds 0 to both); an image with an empty ground truth and a non-empty prediction has IoU 0.
- **Pd** = 100 * detected targets / targets. Targets and predicted objects are 8-connected
  components. A target is detected when a predicted component's centroid lies at a Euclidean
  distance < 3 px from the target's centroid (unrounded centroids). Matching is greedy by
  distance: all (target, prediction) pairs closer than 3 px, nearest first (ties by target then
  prediction label), each target and each predicted component used at most once.
- **Fa** = 1e6 * pixels of the predicted components matched to no target / all pixels, both
  summed over the dataset (BasicIRSTD: ``dismatch_pixel / all_pixel``), so each image counts
  with its own size. Unmatched components are counted one by one: DNANet drops those whose area
  equals a matched component's area, a bug not copied here.

A metric with nothing to measure (no target for Pd, no union for mIoU or nIoU, no image for
Fa) is NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: a target is detected by a predicted component whose centroid is closer than this (px).
MATCH_DISTANCE = 3.0
#: names of :meth:`Scores.result`'s values, in print order.
METRIC_NAMES = ("mIoU", "nIoU", "Pd", "Fa")


def from_logits(logits: np.ndarray) -> np.ndarray:
    """Binary prediction from logits: sigmoid(logit) > 0.5, i.e. logit > 0."""
    return np.asarray(logits) > 0


def from_png_mask(mask: np.ndarray) -> np.ndarray:
    """Binary prediction from an 8-bit predicted mask: > 127 is target."""
    return np.asarray(mask) > 127


@dataclass(frozen=True)
class ImageCounts:
    """What one image adds to the scores."""

    intersection: int
    union: int
    targets: int
    detected: int
    false_alarm_pixels: int
    pixels: int

    @property
    def iou(self) -> float | None:
        """This image's IoU, or None when ground truth and prediction are both empty."""
        return self.intersection / self.union if self.union else None


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Areas (n,) and centroids (n, 2) as (row, col) of the 8-connected components of ``mask``."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return stats[1:n, cv2.CC_STAT_AREA].astype(np.int64), centroids[1:n, ::-1]


def match_targets(gt_centroids: np.ndarray, pred_centroids: np.ndarray) -> list[tuple[int, int]]:
    """Greedy nearest-first matching of targets to predicted components closer than 3 px.

    Returns (target index, prediction index) pairs; each index appears at most once.
    """
    if len(gt_centroids) == 0 or len(pred_centroids) == 0:
        return []
    dist = np.linalg.norm(gt_centroids[:, None, :] - pred_centroids[None, :, :], axis=2)
    ti, pi = np.nonzero(dist < MATCH_DISTANCE)
    order = np.lexsort((pi, ti, dist[ti, pi]))
    used_t: set[int] = set()
    used_p: set[int] = set()
    pairs = []
    for t, p in zip(ti[order].tolist(), pi[order].tolist()):
        if t not in used_t and p not in used_p:
            used_t.add(t)
            used_p.add(p)
            pairs.append((t, p))
    return pairs


def image_counts(pred: np.ndarray, gt: np.ndarray) -> ImageCounts:
    """Counts of one image from boolean (H, W) prediction and ground truth (non-zero = target)."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must be the same (H, W)")
    pred_area, pred_centroids = _components(pred)
    _, gt_centroids = _components(gt)
    pairs = match_targets(gt_centroids, pred_centroids)
    matched = np.zeros(len(pred_area), dtype=bool)
    matched[[p for _, p in pairs]] = True
    return ImageCounts(
        intersection=int(np.count_nonzero(pred & gt)),
        union=int(np.count_nonzero(pred | gt)),
        targets=len(gt_centroids),
        detected=len(pairs),
        false_alarm_pixels=int(pred_area[~matched].sum()),
        pixels=int(pred.size),
    )


class Scores:
    """Accumulates :func:`image_counts` image by image; :meth:`result` gives the scores."""

    def __init__(self) -> None:
        self.images: list[ImageCounts] = []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> ImageCounts:
        """Add one image (boolean prediction and ground truth); returns its counts."""
        counts = image_counts(pred, gt)
        self.images.append(counts)
        return counts

    def result(self) -> dict[str, float | int]:
        """``{"mIoU", "nIoU", "Pd", "Fa", "images", "targets"}``; see the module docstring."""
        inter = sum(c.intersection for c in self.images)
        union = sum(c.union for c in self.images)
        targets = sum(c.targets for c in self.images)
        detected = sum(c.detected for c in self.images)
        fa_pixels = sum(c.false_alarm_pixels for c in self.images)
        pixels = sum(c.pixels for c in self.images)
        ious = [c.iou for c in self.images if c.iou is not None]
        return {
            "mIoU": 100.0 * inter / union if union else math.nan,
            "nIoU": 100.0 * float(np.mean(ious)) if ious else math.nan,
            "Pd": 100.0 * detected / targets if targets else math.nan,
            "Fa": 1e6 * fa_pixels / pixels if pixels else math.nan,
            "images": len(self.images),
            "targets": targets,
        }


def format_table(result: dict[str, float | int]) -> str:
    """A small text table of a :meth:`Scores.result`."""
    head = "".join(f"{name:>10}" for name in METRIC_NAMES) + f"{'images':>8}{'targets':>9}"
    row = "".join(f"{result[name]:>10.2f}" if not math.isnan(result[name]) else f"{'n/a':>10}"
                  for name in METRIC_NAMES)
    row += f"{result['images']:>8}{result['targets']:>9}"
    return head + "\n" + row
