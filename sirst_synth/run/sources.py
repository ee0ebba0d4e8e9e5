"""A worker's decoded train images, so a unit decodes its input only once.

A worker keeps the train images it has decoded (as the method's gray, with their masks and
targets) in a small per-process cache, :data:`SOURCES`, filled by the source scan and by earlier
units. Entries are keyed by the files' paths, sizes and modification times, so a changed file is
decoded again; outputs never depend on hits.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sirst_synth.method.gray import method_gray
from sirst_synth.method.targets import Target, find_targets
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset

#: Bytes of decoded pixels a worker keeps (gray images and masks of the train split).
CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Source:
    """A train image as a unit starts from: its gray (read-only), mask (read-only) and targets."""

    gray: np.ndarray
    mask: np.ndarray
    targets: tuple[Target, ...]


class SourceCache:
    """Decoded train images (:func:`method_gray`), masks and the masks' targets by file,
    least recently used dropped first once ``limit`` bytes are held. A mask is kept as its
    non-zero pixels (a few hundred bytes for an infrared target mask) unless that is larger."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self.held = 0
        self._items: OrderedDict[tuple, tuple[np.ndarray, tuple, tuple[Target, ...], int]] = OrderedDict()

    @staticmethod
    def key(image_path: Path, mask_path: Path) -> tuple | None:
        """(path, size, mtime) of both files, or None when one cannot be stat'ed."""
        try:
            a, b = os.stat(image_path), os.stat(mask_path)
        except OSError:
            return None
        return (os.fspath(image_path), a.st_size, a.st_mtime_ns, os.fspath(mask_path), b.st_size, b.st_mtime_ns)

    def get(self, key: tuple | None) -> Source | None:
        """The kept source (a fresh read-only mask array, read-only gray), or None."""
        if key is None or key not in self._items:
            return None
        self._items.move_to_end(key)
        gray, mask, targets, _ = self._items[key]
        if len(mask) == 3:  # (shape, flat indices, values)
            shape, index, values = mask
            full = np.zeros(shape, np.uint8)
            full.ravel()[index] = values
            full.flags.writeable = False
        else:
            full = mask[0]
        return Source(gray, full, targets)

    def put(self, key: tuple | None, gray: np.ndarray, mask: np.ndarray, targets: list[Target]) -> None:
        """Keep a read-only view of ``gray``, ``mask`` (compacted) and ``targets`` under ``key``
        (nothing when None)."""
        if key is None or key in self._items:
            return
        index = np.flatnonzero(mask)
        if index.size * 5 < mask.size:
            kept: tuple = (mask.shape, index.astype(np.int32), mask.ravel()[index])
            size = gray.nbytes + kept[1].nbytes + kept[2].nbytes
        else:
            kept = (mask.view(),)
            kept[0].flags.writeable = False
            size = gray.nbytes + mask.nbytes
        if size > self.limit:
            return
        gray = gray.view()
        gray.flags.writeable = False
        self._items[key] = (gray, kept, tuple(targets), size)
        self.held += size
        while self.held > self.limit:
            _, old = self._items.popitem(last=False)
            self.held -= old[3]

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.held = 0


#: This process's cache (each joblib worker has its own).
SOURCES = SourceCache()


def keep_source(ds: Dataset, id_: str, gray: np.ndarray, mask: np.ndarray, targets: list[Target]) -> None:
    """Keep a train image just decoded, as its :func:`method_gray`, with its (H, W) mask
    and the mask's targets."""
    SOURCES.put(SourceCache.key(ds.image_path(id_), ds.mask_path(id_)), gray, mask, targets)


def source_pixels(ds: Dataset, id_: str) -> Source:
    """Gray image (:func:`method_gray`: uint8, or float32 for a colour source), (H, W)
    mask and targets of ``id_``: kept by this worker, or decoded once and kept. The arrays are
    read-only (shared with the cache)."""
    image_path, mask_path = ds.image_path(id_), ds.mask_path(id_)
    key = SourceCache.key(image_path, mask_path)
    kept = SOURCES.get(key)
    if kept is not None:
        return kept
    gray = method_gray(imageio.read_image(image_path))
    mask = imageio.mask_from_image(imageio.decode_image(imageio.read_bytes(mask_path), str(mask_path)))
    targets = find_targets(mask)
    SOURCES.put(key, gray, mask, targets)
    kept = SOURCES.get(key)
    return kept if kept is not None else Source(gray, mask, tuple(targets))


_one_thread = False


def one_opencv_thread() -> None:
    """Run OpenCV single-threaded in this process (once): the parallelism is the worker processes';
    OpenCV's own threads on images this small only contend with the other workers for the cores."""
    global _one_thread
    if not _one_thread:
        cv2.setNumThreads(1)
        _one_thread = True


