"""Reading images: modes L, RGB, RGBA (alpha dropped), P (palette); 16-bit and broken files refused."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sirst_synth.errors import ImageError
from sirst_synth.store.imageio import encode_png, read_image, read_mask, to_gray


def _save(tmp_path, arr, mode, name="x.png"):
    path = tmp_path / name
    Image.fromarray(arr).convert(mode).save(path) if mode != "I;16" else Image.fromarray(arr.astype(np.uint16)).save(path)
    return path


def test_modes_are_read_in_the_expected_layout(tmp_path):
    gray = (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)
    assert read_image(_save(tmp_path, gray, "L")).shape == (6, 8)
    rgb = np.stack([gray, gray // 2, 255 - gray], -1)
    assert np.array_equal(read_image(_save(tmp_path, rgb, "RGB")), rgb)
    rgba = np.dstack([rgb, np.full((6, 8), 7, np.uint8)])
    assert np.array_equal(read_image(_save(tmp_path, rgba, "RGBA")), rgb)
    pal = Image.fromarray(gray).convert("P")
    pal.save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))


def test_sixteen_bit_and_broken_files_are_refused_with_the_path(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(path)
    with pytest.raises(ImageError, match="deep.png.*8-bit"):
        read_image(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(encode_png(np.zeros((8, 8), np.uint8))[:30])
    with pytest.raises(ImageError, match="broken.png"):
        read_image(broken)
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_colour_mask_keeps_any_channel_and_gray_is_exact_for_equal_channels(tmp_path):
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1, 1, 2] = 255
    assert read_mask(_save(tmp_path, mask, "RGB")).tolist()[1][1] == 255
    rgb = np.stack([np.arange(256, dtype=np.uint8).reshape(16, 16)] * 3, -1)
    assert np.array_equal(to_gray(rgb), rgb[..., 0].astype(np.float32))


def test_png_round_trip_is_lossless_for_gray_and_rgb():
    rng = np.random.default_rng(0)
    for shape in ((5, 7), (5, 7, 3)):
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        from io import BytesIO
        assert np.array_equal(np.asarray(Image.open(BytesIO(encode_png(arr)))), arr)
