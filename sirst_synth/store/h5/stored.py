"""An image and its mask as the dataset HDF5 file stores them (docs/output.md, "The HDF5 file"):
each one gzip chunk of PNG-style scanlines, made here from decoded pixels, from the banded PNGs a
build writes, or from the PNG files of a finished build."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sirst_synth.errors import DatasetError
from sirst_synth.method.gray import method_gray
from sirst_synth.store import imageio, pngbands
from sirst_synth.store.h5.format import GRAY, GRAY_AS_RGB, GZIP_LEVEL, NONE, RGB, UP, ZLIB_STRATEGY, png_scanlines, up_filter
from sirst_synth.store.pngbands import BandedPNG


@dataclass(frozen=True)
class StoredImage:
    """An image and its mask as stored in the file: their deflated chunks and shapes, and the
    image's layout (:data:`GRAY`, :data:`GRAY_AS_RGB` or :data:`RGB`)."""

    id: str
    image_shape: tuple[int, ...]
    image_chunk: bytes
    mask_shape: tuple[int, ...]
    mask_chunk: bytes
    image_layout: int = GRAY


@dataclass(frozen=True)
class ImageFiles:
    """One image of a finished PNG build to store: its files and the hashes its manifest records."""

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
    :func:`~sirst_synth.store.method_gray` when already computed (uint8 exactly when the
    image is gray or R=G=B)."""
    if image.ndim == 2:
        layout = GRAY
    else:
        gray = method_gray(image) if gray is None else gray
        layout = GRAY_AS_RGB if gray.dtype == np.uint8 else RGB
        image = gray if layout == GRAY_AS_RGB else image
    rows = image.reshape(image.shape[0], -1)
    return layout, (rows.shape[0], rows.shape[1] + 1), _scanlines(up_filter(rows), UP)


def stored_pixels(id_: str, image: np.ndarray, mask: np.ndarray, gray: np.ndarray | None = None) -> StoredImage:
    """The stored form of a decoded image (uint8 (H, W) or (H, W, 3)) and its (H, W) mask
    (unfiltered); ``gray``: as for :func:`_image_chunk`."""
    layout, shape, chunk = _image_chunk(image, gray)
    return StoredImage(id_, shape, chunk, (mask.shape[0], mask.shape[1] + 1), _scanlines(mask, NONE), layout)


def stored_png(id_: str, gray: np.ndarray, image_png: BandedPNG, mask_png: BandedPNG) -> StoredImage:
    """The stored form of an image a build generated from ``gray`` and wrote as the banded PNGs
    ``image_png`` (gray, or R=G=B with ``--channels 3``) and ``mask_png``: the same chunks as
    :func:`stored_files` of its files gives, without reading them. A gray PNG's zlib stream is its
    chunk as it is; an R=G=B one is stored as its gray (:data:`GRAY_AS_RGB`)."""
    if mask_png.colour != pngbands.GRAY or mask_png.filter_type != NONE or image_png.filter_type != UP:
        raise ValueError("expected an Up-filtered image and an unfiltered gray mask")
    if image_png.colour == pngbands.GRAY:
        layout, shape, chunk = GRAY, (image_png.height, image_png.width + 1), image_png.zlib_stream()
    else:
        layout, shape, chunk = GRAY_AS_RGB, (gray.shape[0], gray.shape[1] + 1), _scanlines(up_filter(gray), UP)
    return StoredImage(id_, shape, chunk, (mask_png.height, mask_png.width + 1), mask_png.zlib_stream(), layout)


def _read_checked(path: Path, expected: str) -> bytes:
    data = imageio.read_bytes(path)
    if expected and imageio.sha256(data) != expected:
        raise DatasetError(f"{path}: SHA-256 differs from manifest.csv (the file changed after the build)")
    return data


def stored_files(files: ImageFiles) -> StoredImage:
    """One image and mask of a PNG build as stored chunks: the build's own PNGs' scanlines as they
    are, other PNGs decoded (as the PNG reader does), filtered and deflated; gray stored as one channel."""
    image_png = _read_checked(files.image, files.sha256_image)
    mask_png = _read_checked(files.mask, files.sha256_mask)
    as_is = png_scanlines(image_png, UP, every_row=not files.generated)
    if as_is is not None:
        height, width, image_chunk = as_is
        layout, image_shape = GRAY, (height, width + 1)
    else:
        image = imageio.decode_image(image_png, str(files.image))
        layout, image_shape, image_chunk = _image_chunk(image)
        height, width = image.shape[:2]
    as_is = png_scanlines(mask_png, NONE)
    if as_is is not None:
        mask_size, mask_chunk = as_is[:2], as_is[2]
    else:
        mask = imageio.mask_from_image(imageio.decode_image(mask_png, str(files.mask)))
        mask_size, mask_chunk = mask.shape, _scanlines(mask, NONE)
    if tuple(mask_size) != (height, width):
        raise DatasetError(f"{files.mask}: size {tuple(mask_size)} differs from its image {(height, width)}")
    return StoredImage(files.id, image_shape, image_chunk, (height, width + 1), mask_chunk, layout)

