"""Reading and writing 8-bit PNG images and masks, with atomic writes.

Reading goes through Pillow, which reports the stored mode (L, RGB, RGBA, P, ...), so we can
refuse 16-bit or float data with a clear message. Writing goes through OpenCV's PNG encoder
(fast, fixed settings), always under a temporary name that is renamed into place.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sirst_synth.errors import ImageError, WriteError
from sirst_synth.store.layout import temp_path

#: zlib level used for every PNG this tool writes (speed/size trade-off: ~6 ms per 256x256 RGB).
PNG_COMPRESSION = 3

_GRAY_MODES = {"L", "LA", "1"}
_COLOUR_MODES = {"RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"}






def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode PNG (or any Pillow format) bytes to uint8: (H, W) for gray, (H, W, 3) for colour.

    Mode L stays gray; RGB stays RGB; RGBA drops alpha; P (palette) is expanded to RGB.
    16-bit and float images raise :class:`ImageError` (8-bit is required).
    """
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
    except Exception as exc:  # Pillow raises many types for broken files
        raise ImageError(f"{name}: cannot decode ({exc})") from None
    return np.ascontiguousarray(arr)


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


def encode_png(arr: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) or RGB (H, W, 3) array as PNG bytes (deterministic)."""
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8, got {arr.dtype}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()


def to_gray(image: np.ndarray) -> np.ndarray:
    """float32 (H, W) gray, 0..255, from uint8 gray or RGB.

    An RGB image with R = G = B (gray stored as RGB, as in NUDT-SIRST) gives its channel exactly;
    other colour images use the ITU-R 601 weights.
    """
    if image.ndim == 2:
        return image.astype(np.float32)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return r.astype(np.float32)
    return (0.299 * r + 0.587 * g + 0.114 * b).astype(np.float32)


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes under a temporary name in the same folder, then rename into place."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise WriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise
