"""How a job stores the images it makes: the worker side of an output
(:class:`sirst_synth.run.output.Output` chooses one, workers receive it in their
:class:`~sirst_synth.run.jobs.Place`).

- :data:`PNG_FILES`: each image and mask as a PNG file in the output folder (the DNANet layout).
- :data:`UNIT_FILES`: each unit's images as the dataset HDF5 file stores them, in one file a unit
  (:mod:`sirst_synth.store.h5.units`), and the originals as the scan decoded them
  (``build --format h5``).

Either way a job returns the same manifest rows: the hashes are those of the PNG files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from sirst_synth.store import imageio
from sirst_synth.store.h5.stored import StoredImage, stored_pixels, stored_png
from sirst_synth.store.h5.units import write_unit
from sirst_synth.store.layout import image_name, mask_name
from sirst_synth.store.manifest import Row
from sirst_synth.store.pngbands import BandedPNG


def hashed(row: Row, id_: str, image_png: bytes, mask_png: bytes) -> Row:
    """``row`` as the manifest records the image ``id_`` stored as these PNG bytes."""
    return {**row, "id": id_, "sha256_image": imageio.sha256(image_png), "sha256_mask": imageio.sha256(mask_png)}


def write_pair(out: Path, id_: str, image_png: bytes, mask_png: bytes, row: Row) -> Row:
    """Write an image and its mask as ``id_`` (atomically); return ``row`` with the id and both hashes."""
    root = os.fspath(out)
    imageio.write_atomic(f"{root}/{image_name(id_)}", image_png)
    imageio.write_atomic(f"{root}/{mask_name(id_)}", mask_png)
    return hashed(row, id_, image_png, mask_png)


class Unit(Protocol):
    """The images of one job, stored as they are made: :meth:`add` each, then :meth:`close`."""

    def add(self, id_: str, gray: np.ndarray, image_png: BandedPNG, mask_png: BandedPNG, row: Row) -> Row:
        """Store image ``id_`` (its gray pixels and banded PNGs); return its manifest row."""

    def close(self) -> None:
        """Store what the unit holds (once every image is added)."""


class ImageSink(Protocol):
    """Where a job's images go (picklable: workers receive it)."""

    @property
    def stores_originals(self) -> bool:
        """Whether the output stores each original from the pixels the scan decodes (:meth:`original`)
        instead of copying its files (:meth:`copy`)."""

    def unit(self, out: Path, group: str) -> Unit:
        """A unit of images in the output folder ``out``, named by its ``group``."""

    def copy(self, image: Path, mask: Path, out: Path, id_: str, row: Row, hashes: tuple[str, str]) -> Row:
        """Copy a source pair (the scan's ``hashes`` of its files) as ``id_``; return its row."""

    def original(self, id_: str, image: np.ndarray, mask: np.ndarray, gray: np.ndarray | None) -> StoredImage | None:
        """In the scan's worker: the original as the output stores it, or None (copied later)."""


@dataclass
class _PngUnit:
    out: Path

    def add(self, id_: str, gray: np.ndarray, image_png: BandedPNG, mask_png: BandedPNG, row: Row) -> Row:
        return write_pair(self.out, id_, image_png.png(), mask_png.png(), row)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class PngFiles:
    """Each image and mask as a PNG file in the output folder."""

    stores_originals: bool = False

    def unit(self, out: Path, group: str) -> Unit:
        return _PngUnit(out)

    def copy(self, image: Path, mask: Path, out: Path, id_: str, row: Row, hashes: tuple[str, str]) -> Row:
        """The source's bytes unchanged (hashed as read)."""
        return write_pair(out, id_, imageio.read_bytes(image), imageio.read_bytes(mask), row)

    def original(self, id_: str, image: np.ndarray, mask: np.ndarray, gray: np.ndarray | None) -> StoredImage | None:
        return None


@dataclass
class _StoredUnit:
    out: Path
    group: str
    images: list[StoredImage] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def add(self, id_: str, gray: np.ndarray, image_png: BandedPNG, mask_png: BandedPNG, row: Row) -> Row:
        self.images.append(stored_png(id_, gray, image_png, mask_png))
        self.rows.append(hashed(row, id_, image_png.png(), mask_png.png()))
        return self.rows[-1]

    def close(self) -> None:
        write_unit(self.out, self.group, self.images, self.rows)


@dataclass(frozen=True)
class UnitFiles:
    """Each unit's images as stored chunks in one file (:mod:`sirst_synth.store.h5.units`); the
    originals stored from the scan, their rows recorded from the scan's hashes."""

    stores_originals: bool = True

    def unit(self, out: Path, group: str) -> Unit:
        return _StoredUnit(out, group)

    def copy(self, image: Path, mask: Path, out: Path, id_: str, row: Row, hashes: tuple[str, str]) -> Row:
        """The row of a copy, from the scan's hashes, without writing the files."""
        return {**row, "id": id_, "sha256_image": hashes[0], "sha256_mask": hashes[1]}

    def original(self, id_: str, image: np.ndarray, mask: np.ndarray, gray: np.ndarray | None) -> StoredImage | None:
        return stored_pixels(id_, image, mask, gray)


PNG_FILES = PngFiles()
UNIT_FILES = UnitFiles()
