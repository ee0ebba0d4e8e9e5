"""Job records and the worker code that executes them.

A record holds every decision already made (which image, which noise patch, which rotations are
wanted, output ids); a worker reads its own inputs, writes its own outputs under temporary names,
and returns only manifest rows. Workers never draw random numbers.

A worker keeps the train images it has decoded (as the method's gray, with their masks) in a small
per-process cache, :data:`SOURCES`, filled by the source scan and by earlier units: a unit
decodes its input only when this worker has not kept it. Entries are keyed by the files' paths,
sizes and modification times, so a changed file is decoded again; outputs never depend on hits.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sirst_synth import imageio
from sirst_synth.dataset import Dataset
from sirst_synth.displace import displace
from sirst_synth.manifest import Row
from sirst_synth.negatives import negatives
from sirst_synth.noisebank import cached_bank
from sirst_synth.plan import negative_id
from sirst_synth.targets import Target, find_targets


@dataclass(frozen=True)
class Place:
    """Where workers read (source dataset, noise bank) and write (output root): absolute paths,
    so that workers on other machines of a cluster reach them through a shared filesystem."""

    src: Dataset
    out: Path
    bank: str | None = None


@dataclass(frozen=True)
class CopyJob:
    """Copy one source image and mask byte-identical; ``row`` is its manifest row less the hashes."""

    id: str
    row: Row


@dataclass(frozen=True)
class NoiseDraw:
    """A bank patch chosen by the plan, with its provenance."""

    index: int
    source_id: str
    row: int
    col: int


@dataclass(frozen=True)
class UnitJob:
    """One input image turned into new images: optionally displaced, then optionally negated.

    With ``noise`` the worker writes the displaced image ``out_id`` and negates it; without, it
    negates the input itself (already copied as ``out_id``). ``s`` None means no negatives.
    ``row`` holds the fields inherited by every output row (source, round, noise, alpha).
    """

    input_id: str
    out_id: str
    row: Row
    noise: NoiseDraw | None = None
    alpha: float = 0.0
    fit: str = "resize"
    s: int | None = None
    #: channels of the written images: 1 (8-bit gray) or 3 (R=G=B); see ``imageio.encode_image``.
    channels: int = 1


#: Bytes of decoded pixels a worker keeps (gray images and masks of the train split).
CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Source:
    """A train image as a unit starts from: its gray (read-only), mask (read-only) and targets."""

    gray: np.ndarray
    mask: np.ndarray
    targets: tuple[Target, ...]


class SourceCache:
    """Decoded train images (:func:`imageio.method_gray`), masks and the masks' targets by file,
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
    """Keep a train image just decoded, as its :func:`imageio.method_gray`, with its (H, W) mask
    and the mask's targets."""
    SOURCES.put(SourceCache.key(ds.image_path(id_), ds.mask_path(id_)), gray, mask, targets)


def source_pixels(ds: Dataset, id_: str) -> Source:
    """Gray image (:func:`imageio.method_gray`: uint8, or float32 for a colour source), (H, W)
    mask and targets of ``id_``: kept by this worker, or decoded once and kept. The arrays are
    read-only (shared with the cache)."""
    image_path, mask_path = ds.image_path(id_), ds.mask_path(id_)
    key = SourceCache.key(image_path, mask_path)
    kept = SOURCES.get(key)
    if kept is not None:
        return kept
    gray = imageio.method_gray(imageio.read_image(image_path))
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


def _write_pair(out: Path, id_: str, image_png: bytes, mask_png: bytes, row: Row) -> Row:
    imageio.write_atomic(out / "images" / f"{id_}.png", image_png)
    imageio.write_atomic(out / "masks" / f"{id_}.png", mask_png)
    return {**row, "id": id_, "sha256_image": imageio.sha256(image_png), "sha256_mask": imageio.sha256(mask_png)}


def run_copy(job: CopyJob, place: Place) -> list[Row]:
    """Copy image and mask bytes unchanged; return the row with their hashes (a list of one)."""
    image = imageio.read_bytes(place.src.image_path(job.id))
    mask = imageio.read_bytes(place.src.mask_path(job.id))
    return [_write_pair(place.out, job.id, image, mask, job.row)]


def run_unit(job: UnitJob, place: Place) -> list[Row]:
    """Execute a unit; rows in output order: the displaced image (if any), then its negatives.

    Images are computed on the source's gray and written as 8-bit gray (``job.channels`` 3:
    R=G=B); masks, the displaced image's included, are written by :func:`imageio.encode_mask`."""
    imageio.check_channels(job.channels)
    one_opencv_thread()
    source = source_pixels(place.src, job.input_id)
    image, mask = source.gray, source.mask
    rows = []
    base_row = dict(job.row)
    if job.noise is not None:
        patch = cached_bank(place.bank).patch(job.noise.index)
        image = displace(image, patch, job.alpha, job.fit)
        base_row.update(
            kind="displaced", group=job.out_id, noise_source_id=job.noise.source_id,
            noise_row=str(job.noise.row), noise_col=str(job.noise.col), alpha=repr(job.alpha),
        )
        rows.append(_write_pair(place.out, job.out_id, imageio.encode_image(image, job.channels),
                                imageio.encode_mask(mask), base_row))
    else:
        image = imageio.gray_u8(image)  # negatives of the input itself: a colour source's gray, rounded
    if job.s is not None:
        for neg in negatives(image, mask, list(source.targets), job.s):
            row = {
                **base_row, "kind": "negative", "group": job.out_id, "target": str(neg.target.label),
                "cy": str(neg.target.cy), "cx": str(neg.target.cx), "s": str(job.s), "k": str(neg.k),
            }
            out_id = negative_id(job.out_id, neg.target.label, neg.k)
            rows.append(_write_pair(place.out, out_id, imageio.encode_image(neg.image, job.channels),
                                    imageio.encode_mask(neg.mask), row))
    return rows


def remove_outputs(out: Path, ids: list[str]) -> None:
    """Delete the image and mask files of ``ids`` (the part of a unit cut off by the count plan)."""
    for id_ in ids:
        (out / "images" / f"{id_}.png").unlink(missing_ok=True)
        (out / "masks" / f"{id_}.png").unlink(missing_ok=True)

