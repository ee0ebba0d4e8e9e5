"""The constants and PNG-scanline filters of the dataset HDF5 file (specified in docs/output.md,
"The HDF5 file"): what the writer (:mod:`.writer`), the reader (:mod:`.reader`) and a build
unit's file (:mod:`.units`) share."""
from __future__ import annotations

import contextlib
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np

from sirst_synth.store import imageio

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
#: the type of every string dataset (ids, split lists, manifest columns)
STRING = h5py.string_dtype()


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
