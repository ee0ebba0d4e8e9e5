"""Writing the dataset HDF5 file (specified in docs/output.md, "The HDF5 file"): :class:`H5Writer`
stores images as they come and completes the file from a finished PNG build.

The writing process is the only one that writes the file: it stores chunks prepared elsewhere
(``write_direct_chunk``) in the order they are added, so the file is the same bytes for any
number of workers.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sirst_synth import __version__
from sirst_synth.errors import DatasetError
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.h5.format import FORMAT, FORMAT_VERSION, GZIP_LEVEL, LIBVER, STRING, discard_unfinished
from sirst_synth.store.h5.stored import ImageFiles, StoredImage
from sirst_synth.store.layout import INFO_NAME, KINDS, PARTS, PIXEL_FOLDERS, temp_path
from sirst_synth.store.manifest import COLUMNS

#: stores the images of a finished PNG build not added yet, given their files (in the order it
#: yields them): :func:`sirst_synth.run.pack.store_in_workers` in workers, or ``map(stored_files, ...)``
Store = Callable[[list[ImageFiles]], Iterable[StoredImage]]


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
    group.create_dataset(name, shape=(len(values),), dtype=STRING, data=list(values), track_times=False)


def image_files(ds: Dataset, rows: dict[str, dict[str, str]]) -> list[ImageFiles]:
    """The files of the images ``rows`` (manifest rows by id) of the PNG build ``ds``."""
    return [ImageFiles(id_, ds.image_path(id_), ds.mask_path(id_), row["sha256_image"], row["sha256_mask"],
                       row.get("kind") in KINDS[1:] and row.get("channels") == "1" and bool(row["sha256_image"]))
            for id_, row in rows.items()]


class H5Writer:
    """One dataset HDF5 file written as its pixels come: :meth:`add` stores an image and its mask,
    :meth:`finish` stores the images of the finished build not added yet, writes the ids, split
    lists, manifest and record and renames the file into place; until then it is
    ``.OUT.<pid>.tmp`` (:meth:`abort` removes it).

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

    def add(self, stored: StoredImage) -> None:
        """Store one image and its mask; an id is stored once (DatasetError on a second)."""
        if stored.id in self._layouts:
            raise DatasetError(f"{self.out_file}: image {stored.id!r} is written twice")
        _write_pixels(self._images, stored.id, stored.image_shape, stored.image_chunk)
        _write_pixels(self._masks, stored.id, stored.mask_shape, stored.mask_chunk)
        self._layouts[stored.id] = stored.image_layout

    def has(self, id_: str) -> bool:
        return id_ in self._layouts

    def finish(self, root: Path, split: str, store: Store) -> dict[str, Any]:
        """Complete the file from the finished build in ``root`` (split folder ``split``): its
        record, lists and manifest, and the images not added yet, stored by ``store`` from its PNG
        files, each checked against the SHA-256 of ``manifest.csv``."""
        t0 = time.perf_counter()
        ds = Dataset(Path(root), split)
        info_text, rows, lists = _complete_build(ds)
        extra = next((id_ for id_ in self._layouts if id_ not in rows), None)
        if extra is not None:
            raise DatasetError(f"{ds.manifest_path}: has no row for image {extra!r} written to {self.out_file}")
        for stored in store(image_files(ds, {id_: row for id_, row in rows.items() if id_ not in self._layouts})):
            self.add(stored)
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
