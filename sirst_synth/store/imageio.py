"""Reading and writing 8-bit PNG images and masks, with atomic writes.

Reading: 8-bit gray and RGB PNGs (the common case) are decoded by OpenCV, about twice as fast
as Pillow; everything else goes through Pillow, which reports the stored mode (L, RGB, RGBA, P,
...), so we can refuse 16-bit or float data with a clear message. Both give the same pixels.

Generated images and masks are written as banded PNGs (:mod:`.pngbands`: zlib level 1, run-length
matches, the Up filter for images and none for masks, chosen by measuring size and time on
NUDT-SIRST and SIRST, benchmarks/README.md), so a negative re-deflates only the rows its window
changes. Generated images are 8-bit single-channel gray (what the method computes) or, for loaders
that need three channels, R=G=B; masks are 8-bit gray. Other arrays go through OpenCV's PNG encoder
(:func:`encode_png`). Every file is written under a temporary name that is renamed into place.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sirst_synth.errors import ImageError, ParamError, WriteError
from sirst_synth.method.choices import CHANNELS
from sirst_synth.store import pngbands
from sirst_synth.store.layout import temp_name

#: OpenCV PNG settings of the other arrays written (demo data, exports, predicted masks): zlib level 1,
#: run-length matches only, the Up filter on every row, as the banded PNGs of generated images.
OPENCV_PNG = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_GRAY_MODES = {"L", "LA", "1"}
_COLOUR_MODES = {"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"}






def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode PNG (or any Pillow format) bytes to uint8: (H, W) for gray, (H, W, 3) for colour.

    Mode L stays gray; RGB stays RGB; RGBA drops alpha; P (palette) is expanded to RGB.
    16-bit and float images raise :class:`ImageError` (8-bit is required).
    """
    fast = _decode_png_fast(data)
    if fast is not None:
        return fast
    return _decode_pillow(data, name)


#: PNG dimensions above this are left to the decoders (the PNG limit, 2**31 - 1).
_PNG_MAX_SIDE = 2**31 - 1


def checked_png_shape(data: bytes) -> tuple[int, int, int] | None:
    """(height, width, channels) of an 8-bit gray or RGB, non-interlaced PNG checked whole without
    decoding its pixels: IHDR first and once, IDAT chunks consecutive, no other critical chunk,
    every chunk's CRC right, IEND last, and the image data one zlib stream that inflates to exactly
    its rows, each with a valid filter type, so any PNG reader decodes it. None for any other
    file, or a damaged one: :func:`decode_image` it to know more (and word the error)."""
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE:
        return None
    pos, header = 8, b""
    kinds: list[bytes] = []
    idat: list[bytes] = []
    while pos + 12 <= len(data) and kinds[-1:] != [b"IEND"]:
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(body, zlib.crc32(kind)) != int.from_bytes(crc, "big"):
            return None
        if kind[:1].isupper() and kind not in (b"IHDR", b"IDAT", b"IEND"):
            return None  # PLTE or an unknown critical chunk
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            if kinds[-1:] != [b"IDAT"] and idat:
                return None  # IDAT chunks split by another chunk
            idat.append(body)
        kinds.append(kind)
        pos += 12 + length
    if (kinds[:1] != [b"IHDR"] or kinds.count(b"IHDR") != 1 or kinds[-1] != b"IEND" or not idat
            or len(header) != 13 or header[8:13] not in (b"\x08\x00\x00\x00\x00", b"\x08\x02\x00\x00\x00")):
        return None
    width, height, channels = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big"), 3 if header[9] == 2 else 1
    if not 0 < width <= _PNG_MAX_SIDE or not 0 < height <= _PNG_MAX_SIDE or height * (1 + width * channels) > 2**31:
        return None
    stride = 1 + width * channels
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(idat), height * stride + 1)
    except zlib.error:
        return None
    if not inflate.eof or inflate.unused_data or len(raw) != height * stride or max(raw[::stride]) > 4:
        return None
    return height, width, channels


def _decode_png_fast(data: bytes) -> np.ndarray | None:
    """OpenCV's decoding of an 8-bit gray or RGB PNG (colour type 0 or 2, bit depth 8), else None.

    A file OpenCV cannot decode, or decodes to another layout (a transparent colour adds alpha),
    is left to Pillow, which also words the error.
    """
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    depth, colour = data[24], data[25]
    if depth != 8 or colour not in (0, 2):
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint8:
        return None
    if colour == 0 and arr.ndim == 2:
        return arr
    if colour == 2 and arr.ndim == 3 and arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return None


def _decode_pillow(data: bytes, name: str) -> np.ndarray:
    import io

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = im.mode
            if mode in _GRAY_MODES:
                arr = np.asarray(im.convert("L"))
            elif mode in _COLOUR_MODES:
                arr = np.asarray(im.convert("RGB"))
            else:
                raise ImageError(
                    f"{name}: mode {mode!r} ({_describe_mode(mode)}) is not supported; "
                    "an 8-bit gray or RGB image is needed"
                )
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files; their text names its objects
        raise ImageError(f"{name}: cannot decode: not a readable PNG ({_why_unreadable(data, exc)})") from None
    return np.ascontiguousarray(arr)


def _why_unreadable(data: bytes, exc: Exception) -> str:
    """Why ``data`` did not decode, in our words (Pillow's messages carry reprs such as
    ``<_io.BytesIO object at 0x...>``)."""
    from PIL import UnidentifiedImageError

    if not data:
        return "empty file"
    if isinstance(exc, Image.DecompressionBombError):
        return "too many pixels to decode safely"
    if data[:8] == _PNG_SIGNATURE:
        return "PNG data damaged or cut short"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file"
    return "image data damaged or cut short"


def _describe_mode(mode: str) -> str:
    if mode.startswith("I;16") or mode == "I":
        return "16/32-bit integer"
    if mode == "F":
        return "32-bit float"
    return "unsupported pixel format"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image file; see :func:`decode_image` for the modes."""
    path = Path(path)
    return decode_image(read_bytes(path), str(path))


def mask_from_image(arr: np.ndarray) -> np.ndarray:
    """Collapse a decoded mask to (H, W) uint8: a colour mask keeps its largest channel."""
    return arr.max(axis=2) if arr.ndim == 3 else arr


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask as (H, W) uint8; target pixels are > 0."""
    return mask_from_image(read_image(path))


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole file, with a clear error when it is missing."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror})") from None


def encode_png(arr: np.ndarray, params: tuple[int, ...] = OPENCV_PNG) -> bytes:
    """Encode a uint8 (H, W) or RGB (H, W, 3) array as PNG bytes with OpenCV (``params``: its
    ``IMWRITE_PNG_*`` settings; deterministic)."""
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8, got {arr.dtype}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, list(params))
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()


def check_channels(channels: int) -> None:
    """Raise :class:`ParamError` unless ``channels`` is one of :data:`CHANNELS`: the one check of
    ``--channels``, made by the parameters' ``validate()`` (:mod:`sirst_synth.plan.params`) and
    before every generated image is written."""
    if channels not in CHANNELS:
        raise ParamError(f"--channels must be 1 (gray) or 3 (R=G=B), got {channels}")


def image_pixels(gray: np.ndarray, channels: int = 1) -> np.ndarray:
    """The pixels a generated image is written with: uint8 (H, W) gray as it is (``channels`` 1)
    or as (H, W, 3) with R=G=B (``channels`` 3)."""
    check_channels(channels)
    if gray.ndim != 2:
        raise ValueError(f"expected a gray (H, W) image, got shape {gray.shape}")
    return np.repeat(gray[:, :, None], 3, axis=2) if channels == 3 else gray


def banded_image(gray: np.ndarray, channels: int = 1) -> pngbands.BandedPNG:
    """The banded PNG (:mod:`.pngbands`, Up filter) of a generated image: uint8 (H, W) gray written
    as 8-bit gray (``channels`` 1) or as RGB with R=G=B (``channels`` 3)."""
    return pngbands.encode(image_pixels(gray, channels), pngbands.UP)


def banded_mask(mask: np.ndarray) -> pngbands.BandedPNG:
    """The PNG (:mod:`.pngbands`, no filter) of a uint8 (H, W) mask, its values kept, as one band: a
    mask is mostly zeros, deflated whole in a tenth of an image's time and to half the bytes of
    16-row bands."""
    if mask.ndim != 2:
        raise ValueError(f"expected a (H, W) mask, got shape {mask.shape}")
    return pngbands.encode(mask, pngbands.NONE, band_rows=max(1, mask.shape[0]))


def encode_image(gray: np.ndarray, channels: int = 1) -> bytes:
    """PNG bytes of a generated image (:func:`banded_image`)."""
    return banded_image(gray, channels).png()


def encode_mask(mask: np.ndarray) -> bytes:
    """PNG bytes of a generated mask (:func:`banded_mask`): 8-bit gray."""
    return banded_mask(mask).png()


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes under a temporary name in the same folder (:func:`~sirst_synth.store.layout.temp_path`),
    then rename into place.

    Unbuffered ``os.open``/``os.write`` on string paths (one system call per step, no path
    objects: this runs for every file a build writes)."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, temp_name(name))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise WriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise
