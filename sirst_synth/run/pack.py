"""Writing one HDF5 dataset file: as a build goes (:class:`H5Writer`, ``build --format h5``) or
from a finished PNG build (:func:`pack_dataset`); the format and its reader are
:mod:`sirst_synth.store.h5dataset`.

Workers prepare the chunks; the parent is the single writer and stores them in order
(``write_direct_chunk``), so the file is the same bytes for any number of workers.
"""
from __future__ import annotations

import json
import os
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import h5py
import numpy as np

from sirst_synth import __version__
from sirst_synth.errors import DatasetError
from sirst_synth.run.parallel import run_jobs
from sirst_synth.store import imageio, pngbands
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.h5dataset import (
    _STR,
    BLOCK,
    FORMAT,
    FORMAT_VERSION,
    GRAY,
    GRAY_AS_RGB,
    GZIP_LEVEL,
    LIBVER,
    NONE,
    RGB,
    TASK,
    UP,
    ZLIB_STRATEGY,
    discard_unfinished,
    png_scanlines,
    up_filter,
)
from sirst_synth.store.layout import INFO_NAME, KINDS, PARTS, PIXEL_FOLDERS, temp_path
from sirst_synth.store.manifest import COLUMNS
from sirst_synth.store.pngbands import BandedPNG


@dataclass(frozen=True)
class _PackJob:
    """One image of the PNG build to decode, check against its manifest hashes, and deflate."""

    id: str
    image: Path
    mask: Path
    sha256_image: str
    sha256_mask: str
    #: a gray image a build generated (kind displaced or negative, ``channels`` 1: the build writes
    #: every row of it with the Up filter), so once its hash matches the manifest only its first
    #: row's filter is checked. Masks are always checked whole (any mask PNG may mix filters; a mask
    #: inflates in microseconds).
    generated: bool = False


@dataclass(frozen=True)
class Packed:
    """An image and its mask as stored in the file: their deflated chunks and shapes, and the
    image's layout (:data:`GRAY`, :data:`GRAY_AS_RGB` or :data:`RGB`)."""

    id: str
    image_shape: tuple[int, ...]
    image_chunk: bytes
    mask_shape: tuple[int, ...]
    mask_chunk: bytes
    image_layout: int = GRAY


def _read_checked(path: Path, expected: str) -> bytes:
    data = imageio.read_bytes(path)
    if expected and imageio.sha256(data) != expected:
        raise DatasetError(f"{path}: SHA-256 differs from manifest.csv (the file changed after the build)")
    return data


def _deflate(data: bytes) -> bytes:
    """One zlib stream (what HDF5's gzip filter inflates), level :data:`GZIP_LEVEL`, RLE."""
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 15, 8, ZLIB_STRATEGY)
    return z.compress(data) + z.flush()


def _scanlines(rows: np.ndarray, filter_type: int) -> bytes:
    """Deflated PNG-style scanlines of (H, X) rows already filtered with ``filter_type``."""
    lines = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    lines[:, 0] = filter_type
    lines[:, 1:] = rows
    return _deflate(lines.tobytes())


def _image_chunk(image: np.ndarray, gray: np.ndarray | None = None) -> tuple[int, tuple[int, int], bytes]:
    """(layout, shape, chunk) of a decoded uint8 (H, W) or (H, W, 3) image: Up-filtered and
    deflated, an R=G=B image as its one channel (:data:`GRAY_AS_RGB`). ``gray``: the image's
    :func:`~sirst_synth.store.imageio.method_gray` when already computed (uint8 exactly when the
    image is gray or R=G=B)."""
    if image.ndim == 2:
        layout = GRAY
    else:
        gray = imageio.method_gray(image) if gray is None else gray
        layout = GRAY_AS_RGB if gray.dtype == np.uint8 else RGB
        image = gray if layout == GRAY_AS_RGB else image
    rows = image.reshape(image.shape[0], -1)
    return layout, (rows.shape[0], rows.shape[1] + 1), _scanlines(up_filter(rows), UP)


def packed_pixels(id_: str, image: np.ndarray, mask: np.ndarray, gray: np.ndarray | None = None) -> Packed:
    """The stored form of a decoded image (uint8 (H, W) or (H, W, 3)) and its (H, W) mask
    (unfiltered); ``gray``: as for :func:`_image_chunk`."""
    layout, shape, chunk = _image_chunk(image, gray)
    return Packed(id_, shape, chunk, (mask.shape[0], mask.shape[1] + 1), _scanlines(mask, NONE), layout)


def packed_written(id_: str, gray: np.ndarray, image_png: BandedPNG, mask_png: BandedPNG) -> Packed:
    """The stored form of an image a build generated from ``gray`` and wrote as the banded PNGs
    ``image_png`` (gray, or R=G=B with ``--channels 3``) and ``mask_png``: the same chunks as
    packing its files (:func:`_pack_one`) gives, without reading them. A gray PNG's zlib stream is
    its chunk as it is; an R=G=B one is stored as its gray (:data:`GRAY_AS_RGB`)."""
    if mask_png.colour != pngbands.GRAY or mask_png.filter_type != NONE or image_png.filter_type != UP:
        raise ValueError("expected an Up-filtered image and an unfiltered gray mask")
    if image_png.colour == pngbands.GRAY:
        layout, shape, chunk = GRAY, (image_png.height, image_png.width + 1), image_png.zlib_stream()
    else:
        layout, shape, chunk = GRAY_AS_RGB, (gray.shape[0], gray.shape[1] + 1), _scanlines(up_filter(gray), UP)
    return Packed(id_, shape, chunk, (mask_png.height, mask_png.width + 1), mask_png.zlib_stream(), layout)


def _pack_one(job: _PackJob) -> Packed:
    """One image and mask as stored chunks: the build's own PNGs' scanlines as they are, other
    PNGs decoded (as the PNG reader does), filtered and deflated; gray stored as one channel."""
    image_png = _read_checked(job.image, job.sha256_image)
    mask_png = _read_checked(job.mask, job.sha256_mask)
    fast = png_scanlines(image_png, UP, every_row=not job.generated)
    if fast is not None:
        height, width, image_chunk = fast
        layout, image_shape = GRAY, (height, width + 1)
    else:
        image = imageio.decode_image(image_png, str(job.image))
        layout, image_shape, image_chunk = _image_chunk(image)
        height, width = image.shape[:2]
    fast = png_scanlines(mask_png, NONE)
    if fast is not None:
        mask_size, mask_chunk = fast[:2], fast[2]
    else:
        mask = imageio.mask_from_image(imageio.decode_image(mask_png, str(job.mask)))
        mask_size, mask_chunk = mask.shape, _scanlines(mask, NONE)
    if tuple(mask_size) != (height, width):
        raise DatasetError(f"{job.mask}: size {tuple(mask_size)} differs from its image {(height, width)}")
    return Packed(job.id, image_shape, image_chunk, (height, width + 1), mask_chunk, layout)


def _pack_many(jobs: list[_PackJob]) -> list[Packed]:
    return [_pack_one(job) for job in jobs]


def _write_pixels(group: h5py.Group, name: str, shape: tuple[int, ...], chunk: bytes) -> None:
    """A uint8 dataset of one gzip chunk, stored as deflated by the worker.

    Made with h5py's low-level API, a dataspace and creation property list kept per shape: the
    high-level ``create_dataset`` costs twice as much, in the single writing process."""
    space, plist = _creation(shape)
    dset = h5py.h5d.create(group.id, name.encode("utf-8"), h5py.h5t.NATIVE_UINT8, space, dcpl=plist)
    dset.write_direct_chunk((0,) * len(shape), chunk)


_creations: dict[tuple[int, ...], tuple[h5py.h5s.SpaceID, h5py.h5p.PropDCID]] = {}


def _creation(shape: tuple[int, ...]) -> tuple[h5py.h5s.SpaceID, h5py.h5p.PropDCID]:
    """The dataspace of ``shape`` and a creation property list: one chunk of ``shape``, gzip
    (deflate) level :data:`GZIP_LEVEL`, no timestamps."""
    kept = _creations.get(shape)
    if kept is None:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk(shape)
        plist.set_deflate(GZIP_LEVEL)
        plist.set_obj_track_times(False)
        kept = _creations[shape] = (h5py.h5s.create_simple(shape), plist)
    return kept


def _write_strings(group: h5py.Group, name: str, values: Sequence[str]) -> None:
    group.create_dataset(name, shape=(len(values),), dtype=_STR, data=list(values), track_times=False)


def _pack_jobs(ds: Dataset, rows: dict[str, dict[str, str]]) -> list[_PackJob]:
    return [_PackJob(id_, ds.image_path(id_), ds.mask_path(id_), row["sha256_image"], row["sha256_mask"],
                     row.get("kind") in KINDS[1:] and row.get("channels") == "1" and bool(row["sha256_image"]))
            for id_, row in rows.items()]


def _interleaved(jobs: list[_PackJob]) -> list[int]:
    """Indices of ``jobs``, those that decode (not :attr:`_PackJob.generated`) spread evenly among
    the others: the workers' decoding and the writing process's one dataset per image then overlap
    instead of taking turns (originals come first and last in manifest order)."""
    heavy = [i for i, job in enumerate(jobs) if not job.generated]
    light = [i for i, job in enumerate(jobs) if job.generated]
    order, taken = [], 0
    for k in range(len(jobs)):
        if taken < len(heavy) and (taken * len(jobs) < (k + 1) * len(heavy) or k - taken >= len(light)):
            order.append(heavy[taken])
            taken += 1
        else:
            order.append(light[k - taken])
    return order


def _blocks(jobs: list[_PackJob], n_jobs: int, progress: bool) -> Iterator[Packed]:
    """Results in job order, computed a block at a time so few wait in memory."""
    with click.progressbar(length=len(jobs), label="pack", file=sys.stderr, hidden=not progress) as bar:
        for start in range(0, len(jobs), BLOCK):
            block = jobs[start:start + BLOCK]
            tasks = [block[i:i + TASK] for i in range(0, len(block), TASK)]
            for results in run_jobs(_pack_many, tasks, n_jobs, "pack", False):
                bar.update(len(results))
                yield from results


class H5Writer:
    """One HDF5 dataset file (the format of :mod:`sirst_synth.store.h5dataset`) written as its
    pixels come: :meth:`add` stores an image and its mask, :meth:`finish` packs the ids of the
    finished build not added yet (from its PNG files, in manifest order), writes the ids, split
    lists, manifest and record
    and renames the file into place; until then it is ``.OUT.<pid>.tmp`` (:meth:`abort` removes it).

    The datasets are laid out in the order they are added, so the same sequence of calls gives
    the same bytes."""

    def __init__(self, out_file: Path) -> None:
        self.out_file = Path(out_file)
        self._tmp = temp_path(self.out_file)
        try:
            self._file = h5py.File(self._tmp, "w", libver=LIBVER)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise DatasetError(f"{self.out_file}: cannot write ({reason})") from None
        self._images, self._masks = (self._file.create_group(name, track_times=False) for name in PIXEL_FOLDERS)
        self._layouts: dict[str, int] = {}

    def add(self, packed: Packed) -> None:
        """Store one image and its mask; an id is stored once (DatasetError on a second)."""
        if packed.id in self._layouts:
            raise DatasetError(f"{self.out_file}: image {packed.id!r} is written twice")
        _write_pixels(self._images, packed.id, packed.image_shape, packed.image_chunk)
        _write_pixels(self._masks, packed.id, packed.mask_shape, packed.mask_chunk)
        self._layouts[packed.id] = packed.image_layout

    def has(self, id_: str) -> bool:
        return id_ in self._layouts

    def finish(self, root: Path, split: str, progress: bool = False, n_jobs: int = 1) -> dict[str, Any]:
        """Complete the file from the finished build in ``root`` (split folder ``split``): its
        record, lists and manifest, and the images not added yet, read from its PNG files, each
        checked against the SHA-256 of ``manifest.csv``."""
        t0 = time.perf_counter()
        ds = Dataset(Path(root), split)
        info_text, rows, lists = _complete_build(ds)
        extra = next((id_ for id_ in self._layouts if id_ not in rows), None)
        if extra is not None:
            raise DatasetError(f"{ds.manifest_path}: has no row for image {extra!r} written to {self.out_file}")
        missing = _pack_jobs(ds, {id_: row for id_, row in rows.items() if id_ not in self._layouts})
        order = _interleaved(missing)
        for packed in _blocks([missing[i] for i in order], n_jobs, progress):
            self.add(packed)
        f = self._file
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "split": split,
                        "info": info_text, "tool_version": __version__})
        _write_strings(f, "ids", list(rows))
        split_group = f.create_group("splits", track_times=False).create_group(split, track_times=False)
        for part, ids in lists.items():
            _write_strings(split_group, part, ids)
        manifest = f.create_group("manifest", track_times=False)
        for column in COLUMNS:
            _write_strings(manifest, column, [row[column] for row in rows.values()])
        f.create_dataset("image_layout", data=np.array([self._layouts[id_] for id_ in rows], np.uint8),
                         track_times=False)
        f.close()
        os.replace(self._tmp, self.out_file)
        return {"file": str(self.out_file), "images": len(rows), "train": len(lists["train"]),
                "test": len(lists["test"]), "bytes": self.out_file.stat().st_size,
                "seconds": round(time.perf_counter() - t0, 3)}

    def abort(self) -> None:
        """Drop the unfinished file."""
        discard_unfinished(self._file, self._tmp)


def _complete_build(ds: Dataset) -> tuple[str, dict[str, dict[str, str]], dict[str, list[str]]]:
    """The record text, manifest rows and split lists of a complete PNG build, or DatasetError."""
    info_path = ds.root / INFO_NAME
    try:
        info_text = info_path.read_text(encoding="utf-8")
        json.loads(info_text)
    except FileNotFoundError:
        raise DatasetError(f"{info_path}: not found; only a complete build can be packed") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{info_path}: not valid JSON ({exc})") from None
    rows = ds.manifest()
    if rows is None:
        raise DatasetError(f"{ds.manifest_path}: not found; only a complete build can be packed")
    lists = {part: ds.ids(part) for part in PARTS}
    for part, ids in lists.items():
        missing = next((id_ for id_ in ids if id_ not in rows), None)
        if missing is not None:
            raise DatasetError(f"{ds.split_file(part)}: id {missing} is not in {ds.manifest_path}")
    return info_text, rows, lists


def pack_dataset(root: Path, out_file: Path, split: str, progress: bool = False, n_jobs: int = 1) -> dict[str, Any]:
    """Write the complete PNG build in ``root`` (split folder ``split``) as one HDF5 file.

    Every image is checked against the SHA-256 of ``manifest.csv``. ``out_file`` appears (or is
    replaced) only once the file is complete. Returns the file, image counts, size and seconds.
    """
    writer = H5Writer(out_file)
    try:
        return writer.finish(root, split, progress, n_jobs)
    except BaseException:
        writer.abort()
        raise


