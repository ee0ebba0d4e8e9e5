"""A built dataset as one HDF5 file (docs/method.md section 6, ``build --format h5``) and its reader.

Layout (format ``sirst-synth-dataset``, version 2):

    images/<id>                   uint8 (H, X + 1): the image's PNG scanlines, each row a filter-type
                                  byte (2, Up) then the row Up-filtered (see below); X = W for a
                                  gray image, 3 W for a colour one (R, G, B interleaved)
    masks/<id>                    uint8 (H, W + 1): the mask's PNG scanlines, each row a filter-type
                                  byte (0, None) then the mask row as ``imageio.read_mask`` returns it
    image_layout                  uint8 (n,), per id: 0 gray, 1 gray from a PNG with three equal
                                  channels (R=G=B, as NUDT-SIRST's originals; read as (H, W, 3)),
                                  2 colour
    ids                           str (n,): every id, in manifest order
    splits/<split>/train, test    str: the split lists, in list order
    manifest/<column>             str (n,): one per ``manifest.COLUMNS``, rows in manifest order
    attrs: format, format_version, split (the default split), info (the sirst-synth.json text),
           tool_version

Up filter (PNG's): stored row 0 is pixel row 0, stored row r is row r minus row r - 1 modulo
256; ``np.cumsum(stored[:, 1:], axis=0, dtype=np.uint8)`` gives the pixels back (the reader uses
OpenCV's integral image, three times faster). It halves the deflated size of noisy infrared
images, so the file is no larger than the PNG folder, and it is how the build's own PNGs are
filtered: their compressed scanlines (the PNG's IDAT stream) are stored as they are, without
decoding or compressing them again. Other PNGs (copied originals) are decoded, filtered and
deflated (zlib level 1, run-length matches). Gray is stored as one channel whatever the PNG held.

One chunk per image, so a training read is one chunk read, one inflate and one running sum down
the columns. Workers prepare the chunks; the parent is the single writer and stores them in
order (``write_direct_chunk``), so the file is the same bytes for any number of workers. The file
is written under a temporary name and renamed into place when complete. The reader reads this
format version only.

:class:`H5Dataset` reads the file (a :class:`sirst_synth.store.reader.DatasetReader`); it opens
its HDF5 handle lazily in each process, so it works in DataLoader workers. Writing it is
:mod:`sirst_synth.run.pack`.
"""
from __future__ import annotations

import contextlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from sirst_synth.errors import DatasetError
from sirst_synth.store import imageio
from sirst_synth.store.layout import MASKS
from sirst_synth.store.manifest import COLUMNS

FORMAT = "sirst-synth-dataset"
FORMAT_VERSION = 2
#: deflate level of the pixel chunks (1: 10 % larger than 4, a third less CPU to write; reads equal).
GZIP_LEVEL = 1
#: zlib strategy of the chunks it deflates: run-length matches only (as the build's PNGs).
ZLIB_STRATEGY = zlib.Z_RLE
#: PNG filter types of the stored scanlines.
UP, NONE = 2, 0
#: values of ``image_layout``.
GRAY, GRAY_AS_RGB, RGB = 0, 1, 2
#: HDF5 file format bounds: v110 (HDF5 >= 1.10) stores a single-chunk dataset without a B-tree.
LIBVER = ("v110", "v110")
#: images decoded per round of workers: bounds the compressed chunks waiting in memory.
BLOCK = 512
#: images per worker task (joblib's per-task overhead is paid once per task).
TASK = 64

_STR = h5py.string_dtype()


def discard_unfinished(file: h5py.File, tmp: Path) -> None:
    """Close an HDF5 file being written, whatever state a failed write left it in, and delete it
    (its temporary name ``tmp``)."""
    try:
        with contextlib.suppress(Exception):
            file.close()
    finally:
        tmp.unlink(missing_ok=True)


def up_filter(pixels: np.ndarray) -> np.ndarray:
    """PNG's Up filter along axis 0: row 0 as is, row r minus row r - 1 (modulo 256)."""
    out = pixels.copy()
    np.subtract(pixels[1:], pixels[:-1], out=out[1:])
    return out


def up_unfilter(stored: np.ndarray) -> np.ndarray:
    """The inverse of :func:`up_filter`: a running sum modulo 256 down each column.

    Computed from OpenCV's integral image (exact: 32-bit sums while they cannot overflow, else
    64-bit floats), three times faster than ``np.cumsum`` on uint8."""
    flat = stored.reshape(stored.shape[0], -1)  # (H, W * C): columns of every channel side by side
    exact_int32 = flat.size * 255 < 2**31
    total = cv2.integral(flat, sdepth=cv2.CV_32S if exact_int32 else cv2.CV_64F)
    columns = total[1:, 1:] - total[1:, :-1]
    if not exact_int32:
        columns = np.mod(columns, 256)
    return columns.astype(np.uint8).reshape(stored.shape)


def png_scanlines(data: bytes, filter_type: int, every_row: bool = True) -> tuple[int, int, bytes] | None:
    """(height, width, zlib stream of the scanlines) of an 8-bit gray, non-interlaced PNG whose every
    row uses ``filter_type``; None for any other PNG (or a damaged one).

    ``every_row=False`` checks the first row's filter only, for a PNG known to use one filter on
    every row (an image sirst-synth generated, checked against its manifest hash)."""
    if data[:8] != imageio._PNG_SIGNATURE:
        return None
    pos, idat, header = 8, [], None
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or len(header) != 13 or not idat:
        return None
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, compression, filtering, interlace = header[8:13]
    if (depth, colour, compression, filtering, interlace) != (8, 0, 0, 0, 0):
        return None
    stream = b"".join(idat)
    try:
        if zlib.decompressobj().decompress(stream, 1) != bytes([filter_type]):
            return None  # the first row already uses another filter: no need to inflate the rest
        if not every_row:
            return height, width, stream
        raw = zlib.decompress(stream)
    except zlib.error:
        return None
    if len(raw) != height * (width + 1) or raw[::width + 1] != bytes([filter_type]) * height:
        return None
    return height, width, stream


def _strings(dset: h5py.Dataset) -> list[str]:
    return dset.asstr()[()].tolist()


class H5Dataset:
    """A dataset file written by ``build --format h5`` (or :func:`~sirst_synth.run.pack.pack_dataset`),
    read like :class:`sirst_synth.store.dataset.Dataset`.

    ``root`` is the file. ``split`` defaults to the file's own. The HDF5 handle is opened on
    first use in each process (h5py handles must not cross a fork) and dropped when pickled.
    """

    def __init__(self, path: str | os.PathLike, split: str | None = None) -> None:
        self.root = Path(path)
        self._file: h5py.File | None = None
        self._pid = -1
        f = self._h5()
        fmt, version = f.attrs.get("format"), f.attrs.get("format_version")
        if fmt != FORMAT:
            raise DatasetError(f"{self.root}: an HDF5 file but not a sirst-synth dataset (format {fmt!r})")
        if version is None or int(version) != FORMAT_VERSION:
            raise DatasetError(f"{self.root}: dataset format version {version}; this sirst-synth reads version "
                               f"{FORMAT_VERSION}")
        self.split = str(f.attrs["split"]) if split is None else split
        self._layout: dict[str, int] | None = None
        have = sorted(f["splits"]) if "splits" in f else []
        if self.split not in have:
            raise DatasetError(f"{self.root}: no split {self.split!r} in the file; it has: {', '.join(have) or 'none'}")

    def _h5(self) -> h5py.File:
        """This process's open handle (a forked child opens its own)."""
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.root, "r")
            except OSError as exc:
                raise DatasetError(f"{self.root}: not a readable HDF5 file ({exc})") from None
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_pid": -1}

    def _image_layout(self, id_: str) -> int:
        """:data:`GRAY`, :data:`GRAY_AS_RGB` or :data:`RGB` (the layouts read once per process)."""
        if self._layout is None:
            f = self._h5()
            self._layout = dict(zip(_strings(f["ids"]), f["image_layout"][()].tolist()))
        return self._layout.get(id_, GRAY)

    def __repr__(self) -> str:
        return f"H5Dataset({str(self.root)!r}, split={self.split!r})"

    def info(self) -> dict[str, Any]:
        """The build's ``sirst-synth.json``."""
        return json.loads(self._h5().attrs["info"])

    def split_file(self, part: str) -> str:
        """Where the list of ``part`` lives, for messages: ``FILE:splits/<split>/<part>``."""
        return f"{self.root}:splits/{self.split}/{part}"

    def ids(self, part: str) -> list[str]:
        """Ids of ``part`` ('train' or 'test') in list order."""
        dset = self._h5()[f"splits/{self.split}"].get(part)
        if dset is None:
            raise DatasetError(f"{self.split_file(part)}: split list not found")
        return _strings(dset)

    def _dataset(self, kind: str, id_: str) -> h5py.Dataset:
        dset = self._h5()[kind].get(id_)
        if not isinstance(dset, h5py.Dataset):
            raise DatasetError(f"{self.root}: no {kind[:-1]} for id {id_!r}")
        return dset

    def _gray_or_colour(self, id_: str) -> tuple[np.ndarray, int]:
        """The image's pixels, (H, W) or (H, W, 3), and its layout; R=G=B stays (H, W) here."""
        stored = self._dataset("images", id_)[()]
        layout = self._image_layout(id_)
        pixels = up_unfilter(np.ascontiguousarray(stored[:, 1:]))
        return (pixels.reshape(pixels.shape[0], -1, 3) if layout == RGB else pixels), layout

    def read_image(self, id_: str) -> np.ndarray:
        """uint8 image, (H, W) gray or (H, W, 3) RGB, as the PNG build's."""
        pixels, layout = self._gray_or_colour(id_)
        return np.repeat(pixels[:, :, None], 3, axis=2) if layout == GRAY_AS_RGB else pixels

    def read_gray(self, id_: str) -> np.ndarray:
        """float32 (H, W) gray image, 0..255 (an R=G=B image's gray is read without expanding it)."""
        return imageio.to_gray(self._gray_or_colour(id_)[0])

    def read_mask(self, id_: str) -> np.ndarray:
        """uint8 (H, W) mask; target pixels are > 0."""
        stored = self._dataset(MASKS, id_)[()]
        return np.ascontiguousarray(stored[:, 1:])

    def manifest(self) -> dict[str, dict[str, str]]:
        """Manifest rows by id (every column of ``manifest.COLUMNS``), in manifest order."""
        group = self._h5()["manifest"]
        columns = {c: _strings(group[c]) for c in COLUMNS if c in group}
        if "id" not in columns:
            raise DatasetError(f"{self.root}: the manifest has no 'id' column")
        return {id_: {c: columns[c][i] if c in columns else "" for c in COLUMNS}
                for i, id_ in enumerate(columns["id"])}

    def groups(self) -> dict[str, str]:
        """id -> group (the id of the group's k = 0 image)."""
        return {id_: row["group"] or id_ for id_, row in self.manifest().items()}

    def close(self) -> None:
        """Close this process's handle (reopened on next use)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None


def is_hdf5_file(path: str | os.PathLike) -> bool:
    """True for an existing file with the HDF5 signature."""
    path = Path(path)
    return path.is_file() and h5py.is_hdf5(path)
