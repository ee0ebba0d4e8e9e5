"""Packing a finished PNG build into one HDF5 dataset file (``build --format h5``); the format
and its reader are :mod:`sirst_synth.store.h5dataset`.

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
from sirst_synth.store import imageio
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
    png_scanlines,
    up_filter,
)
from sirst_synth.store.layout import INFO_NAME, KINDS, PARTS, PIXEL_FOLDERS, temp_path
from sirst_synth.store.manifest import COLUMNS


@dataclass(frozen=True)
class _PackJob:
    """One image of the PNG build to decode, check against its manifest hashes, and deflate."""

    id: str
    image: Path
    mask: Path
    sha256_image: str
    sha256_mask: str
    #: a gray image a build generated (kind displaced or negative, ``channels`` 1: every version that
    #: records channels writes every row of it with the Up filter), so once its hash matches the
    #: manifest only its first row's filter is checked. Masks are always checked whole (older
    #: builds wrote them with mixed filters; a mask inflates in microseconds).
    generated: bool = False


@dataclass(frozen=True)
class _Packed:
    """A job's result: the deflated chunks and shapes of an image and its mask."""

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


def _pack_one(job: _PackJob) -> _Packed:
    """One image and mask as stored chunks: the build's own PNGs' scanlines as they are, other
    PNGs decoded (as the PNG reader does), filtered and deflated; gray stored as one channel."""
    image_png = _read_checked(job.image, job.sha256_image)
    mask_png = _read_checked(job.mask, job.sha256_mask)
    layout = GRAY
    fast = png_scanlines(image_png, UP, every_row=not job.generated)
    if fast is not None:
        height, width, image_chunk = fast
        image_shape = (height, width + 1)
    else:
        image = imageio.decode_image(image_png, str(job.image))
        if image.ndim == 3 and all(np.array_equal(image[..., 0], image[..., c]) for c in range(1, image.shape[2])):
            image, layout = np.ascontiguousarray(image[..., 0]), GRAY_AS_RGB
        elif image.ndim == 3:
            layout = RGB
        height, width = image.shape[:2]
        rows = image.reshape(height, -1)
        image_shape, image_chunk = (height, rows.shape[1] + 1), _scanlines(up_filter(rows), UP)
    fast = png_scanlines(mask_png, NONE)
    if fast is not None:
        mask_size, mask_chunk = fast[:2], fast[2]
    else:
        mask = imageio.mask_from_image(imageio.decode_image(mask_png, str(job.mask)))
        mask_size, mask_chunk = mask.shape, _scanlines(mask, NONE)
    if tuple(mask_size) != (height, width):
        raise DatasetError(f"{job.mask}: size {tuple(mask_size)} differs from its image {(height, width)}")
    return _Packed(job.id, image_shape, image_chunk, (height, width + 1), mask_chunk, layout)


def _pack_many(jobs: list[_PackJob]) -> list[_Packed]:
    return [_pack_one(job) for job in jobs]


def _write_pixels(group: h5py.Group, name: str, shape: tuple[int, ...], chunk: bytes) -> None:
    """A uint8 dataset of one gzip chunk, stored as deflated by the worker.

    Made with h5py's low-level API and a creation property list kept per shape: the high-level
    ``create_dataset`` costs twice as much, in the single writing process."""
    dset = h5py.h5d.create(group.id, name.encode("utf-8"), h5py.h5t.NATIVE_UINT8, h5py.h5s.create_simple(shape),
                           dcpl=_creation_plist(shape))
    dset.write_direct_chunk((0,) * len(shape), chunk)


_plists: dict[tuple[int, ...], h5py.h5p.PropDCID] = {}


def _creation_plist(shape: tuple[int, ...]) -> h5py.h5p.PropDCID:
    """One chunk of ``shape``, gzip (deflate) level :data:`GZIP_LEVEL`, no timestamps."""
    plist = _plists.get(shape)
    if plist is None:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk(shape)
        plist.set_deflate(GZIP_LEVEL)
        plist.set_obj_track_times(False)
        _plists[shape] = plist
    return plist


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


def _blocks(jobs: list[_PackJob], n_jobs: int, progress: bool) -> Iterator[_Packed]:
    """Results in job order, computed a block at a time so few wait in memory."""
    with click.progressbar(length=len(jobs), label="pack", file=sys.stderr, hidden=not progress) as bar:
        for start in range(0, len(jobs), BLOCK):
            block = jobs[start:start + BLOCK]
            tasks = [block[i:i + TASK] for i in range(0, len(block), TASK)]
            for results in run_jobs(_pack_many, tasks, n_jobs, "pack", False):
                bar.update(len(results))
                yield from results


def pack_dataset(root: Path, out_file: Path, split: str, progress: bool = False, n_jobs: int = 1) -> dict[str, Any]:
    """Write the complete PNG build in ``root`` (split folder ``split``) as one HDF5 file.

    Every image is checked against the SHA-256 of ``manifest.csv``. ``out_file`` appears (or is
    replaced) only once the file is complete. Returns the file, image counts, size and seconds.
    """
    t0 = time.perf_counter()
    root, out_file = Path(root), Path(out_file)
    ds = Dataset(root, split)
    info_path = root / INFO_NAME
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

    tmp = temp_path(out_file)
    try:
        f = h5py.File(tmp, "w", libver=LIBVER)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise DatasetError(f"{out_file}: cannot write ({reason})") from None
    try:
        with f:
            f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "split": split,
                            "info": info_text, "tool_version": __version__})
            _write_strings(f, "ids", list(rows))
            split_group = f.create_group("splits", track_times=False).create_group(split, track_times=False)
            for part, ids in lists.items():
                _write_strings(split_group, part, ids)
            manifest = f.create_group("manifest", track_times=False)
            for column in COLUMNS:
                _write_strings(manifest, column, [row[column] for row in rows.values()])
            images, masks = (f.create_group(name, track_times=False) for name in PIXEL_FOLDERS)
            layout = np.zeros(len(rows), np.uint8)
            jobs = _pack_jobs(ds, rows)
            order = _interleaved(jobs)
            for k, packed in zip(order, _blocks([jobs[i] for i in order], n_jobs, progress)):
                _write_pixels(images, packed.id, packed.image_shape, packed.image_chunk)
                _write_pixels(masks, packed.id, packed.mask_shape, packed.mask_chunk)
                layout[k] = packed.image_layout
            f.create_dataset("image_layout", data=layout, track_times=False)
        os.replace(tmp, out_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"file": str(out_file), "images": len(rows), "train": len(lists["train"]), "test": len(lists["test"]),
            "bytes": out_file.stat().st_size, "seconds": round(time.perf_counter() - t0, 3)}


