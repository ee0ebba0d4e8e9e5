"""8-bit PNGs deflated in independent bands of rows, so that an image that differs from one already
encoded in a few rows is encoded by deflating only the bands it changes: a negative differs from
its displaced image in one s x s window (docs/method.md section 4), so it costs a band or two
instead of a whole image.

Every band of :data:`BAND_ROWS` scanlines is its own raw deflate segment (zlib level 1, run-length
matches only, ended by a full flush, so it refers to nothing before it). The PNG's zlib stream is
the segments in order, an empty final block and the Adler-32 of all scanlines. The same pixels
always give the same bytes, and every PNG reader decodes them: a zlib stream of several deflate
blocks is an ordinary PNG. Compression is zlib's; this module only frames it.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

#: scanlines per independently deflated band of an image: 16 rows deflate as fast and as small as
#: one stream of the whole image (benchmarks/README.md), and a 3 x 3 window touches one or two bands.
BAND_ROWS = 16
#: PNG colour types written.
GRAY, RGB = 0, 2
#: PNG filter types written: none (masks), Up (images: the cheapest filter to undo when reading).
NONE, UP = 0, 2

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, "fastest" level
_FINAL_BLOCK = b"\x03\x00"  # an empty final block (fixed Huffman codes)
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class BandedPNG:
    """An image's scanlines (filter byte, then the filtered row) and each band's deflate segment."""

    width: int
    height: int
    colour: int
    filter_type: int
    band_rows: int
    lines: np.ndarray
    bands: tuple[bytes, ...]

    def png(self) -> bytes:
        """The PNG file's bytes."""
        return self._png

    @cached_property
    def _png(self) -> bytes:  # made once: negatives that keep their base's mask share its file
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, self.colour, 0, 0, 0)
        return b"".join((_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", self.zlib_stream()), _IEND))

    def zlib_stream(self) -> bytes:
        """The zlib stream of the scanlines: the PNG's image data (and an HDF5 gzip chunk)."""
        return self._stream

    @cached_property
    def _stream(self) -> bytes:  # made once: the PNG and an HDF5 chunk share it
        return b"".join((_ZLIB_HEADER, *self.bands, _FINAL_BLOCK, struct.pack(">I", zlib.adler32(self.lines.data))))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return b"".join((struct.pack(">I", len(body)), kind, body, struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))))


def _deflate(lines: np.ndarray) -> bytes:
    z = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_RLE)
    return z.compress(lines.data) + z.flush(zlib.Z_FULL_FLUSH)


def _rows(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W * C) rows of a uint8 (H, W) gray or (H, W, 3) RGB array, and its colour type."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"expected uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        return pixels, GRAY
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels.reshape(pixels.shape[0], -1), RGB
    raise ValueError(f"expected a (H, W) gray or (H, W, 3) RGB array, got shape {pixels.shape}")


def _filter(rows: np.ndarray, lines: np.ndarray, filter_type: int, lo: int, hi: int) -> None:
    """Write the filtered scanlines ``lo..hi - 1`` of ``rows`` into ``lines``."""
    lines[lo:hi, 0] = filter_type
    if filter_type == NONE:
        lines[lo:hi, 1:] = rows[lo:hi]
        return
    if lo == 0:
        lines[0, 1:] = rows[0]
        lo = 1
    if lo < hi:
        np.subtract(rows[lo:hi], rows[lo - 1:hi - 1], out=lines[lo:hi, 1:])


def encode(pixels: np.ndarray, filter_type: int = UP, band_rows: int = BAND_ROWS) -> BandedPNG:
    """The banded PNG of a uint8 (H, W) gray or (H, W, 3) RGB image, every row with ``filter_type``,
    deflated in bands of ``band_rows`` scanlines."""
    if band_rows < 1:
        raise ValueError(f"band_rows must be >= 1, got {band_rows}")
    if filter_type not in (NONE, UP):
        raise ValueError(f"filter_type must be {NONE} (none) or {UP} (Up), got {filter_type}")
    rows, colour = _rows(pixels)
    height = rows.shape[0]
    lines = np.empty((height, rows.shape[1] + 1), np.uint8)
    _filter(rows, lines, filter_type, 0, height)
    bands = tuple(_deflate(lines[y:y + band_rows]) for y in range(0, height, band_rows))
    return BandedPNG(pixels.shape[1], height, colour, filter_type, band_rows, lines, bands)


def changed(base: BandedPNG, pixels: np.ndarray, y0: int, y1: int) -> BandedPNG:
    """The banded PNG of ``pixels``, which equal the pixels ``base`` was made from outside rows
    ``y0 .. y1 - 1``: only the bands whose scanlines change are deflated again. The result is the
    same bytes as :func:`encode` of ``pixels``."""
    rows, colour = _rows(pixels)
    if (pixels.shape[1], rows.shape[0], colour) != (base.width, base.height, base.colour):
        raise ValueError(f"pixels of shape {pixels.shape} do not match the {base.width}x{base.height} base image")
    if not 0 <= y0 < y1 <= base.height:
        raise ValueError(f"rows {y0}..{y1} are not inside the {base.height} rows of the image")
    hi = min(base.height, y1 + 1) if base.filter_type == UP else y1  # Up: the next row's line changes too
    lines = base.lines.copy()
    _filter(rows, lines, base.filter_type, y0, hi)
    bands = list(base.bands)
    step = base.band_rows
    for band in range(y0 // step, (hi - 1) // step + 1):
        bands[band] = _deflate(lines[band * step:(band + 1) * step])
    return replace(base, lines=lines, bands=tuple(bands))
