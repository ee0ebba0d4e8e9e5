"""One release image and mask into the canonical files: 8-bit PNG image, 0/255 gray PNG mask.

An 8-bit PNG image is copied byte for byte; any other format Pillow reads (BMP, JPEG, TIFF, ...)
is re-encoded to PNG losslessly in its own mode (the decoded pixels are kept exactly). A mask that
is already an 8-bit gray PNG with values 0 and 255 only is copied; otherwise it is binarised
(``value > threshold`` -> 255; a 0/1 mask is scaled to 0/255) and written as a gray PNG.
A mask whose size differs from its image is reported, never resized.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sirst_synth.store import imageio

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: modes Pillow writes to PNG without any change of pixel values
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}


@dataclass(frozen=True)
class Converted:
    """The bytes to write for one file and what was done to get them."""

    data: bytes
    action: str
    width: int
    height: int


@dataclass(frozen=True)
class MaskResult(Converted):
    #: values other than 0 and 255 before binarising (at most 5, ascending); empty when binary
    odd_values: tuple[int, ...] = ()
    #: target pixels (> 0) in the source mask that binarising turned to 0
    dropped_pixels: int = 0


def _pillow_mode(data: bytes) -> tuple[str, str]:
    """(format, mode) from the file header, without decoding the pixels."""
    with Image.open(io.BytesIO(data)) as im:
        return im.format or "?", im.mode


def convert_image(data: bytes, name: str) -> Converted:
    """Check an image is readable and 8-bit; keep PNG bytes, re-encode anything else to PNG."""
    pixels = imageio.decode_image(data, name)  # refuses 16-bit / float with a clear line
    h, w = pixels.shape[:2]
    if data.startswith(PNG_MAGIC):
        return Converted(data, "copied", w, h)
    fmt, mode = _pillow_mode(data)
    buf = io.BytesIO()
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        im: Image.Image = opened
        if im.mode not in _PNG_MODES:
            im = im.convert("RGB" if pixels.ndim == 3 else "L")
        im.save(buf, "PNG", optimize=False)
    return Converted(buf.getvalue(), f"re-encoded {fmt} ({mode}) to PNG, lossless", w, h)


def empty_mask(width: int, height: int) -> MaskResult:
    """An all-zero mask for an image the release ships without a mask (a target-free image)."""
    data = imageio.encode_png(np.zeros((height, width), np.uint8))
    return MaskResult(data, "empty: no mask in the release (target-free image)", width, height)


def binarise(mask: np.ndarray, threshold: int) -> tuple[np.ndarray, str]:
    """0/255 mask and how it was made: a 0/1 mask is scaled, anything else thresholded."""
    if mask.max(initial=0) == 1:
        return (mask * 255).astype(np.uint8), "0/1 mask scaled to 0/255"
    return np.where(mask > threshold, 255, 0).astype(np.uint8), f"binarised: value > {threshold} -> 255"


def convert_mask(data: bytes, name: str, threshold: int) -> MaskResult:
    """Decode a mask, keep it when it is already a 0/255 gray PNG, else binarise and re-encode."""
    mask = imageio.mask_from_image(imageio.decode_image(data, name))
    h, w = mask.shape
    values = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
    odd = tuple(int(v) for v in values if v not in (0, 255))
    fmt, mode = _pillow_mode(data)
    if not odd and fmt == "PNG" and mode == "L":
        return MaskResult(data, "copied", w, h)
    if not odd:
        out = np.where(mask > 0, 255, 0).astype(np.uint8)
        return MaskResult(imageio.encode_png(out), f"re-encoded {fmt} ({mode}) to gray PNG", w, h)
    out, how = binarise(mask, threshold)
    dropped = int(np.count_nonzero((mask > 0) & (out == 0)))
    return MaskResult(imageio.encode_png(out), how, w, h, odd[:5], dropped)


def read_file(path: Path) -> bytes:
    """Bytes of a release file (one clear line when it is missing or unreadable)."""
    return imageio.read_bytes(path)
