"""Banded PNGs: any reader decodes them, and re-deflating only the changed bands gives the same bytes."""
from io import BytesIO

import cv2
import numpy as np
import pytest
from PIL import Image

from sirst_synth.store import pngbands
from sirst_synth.store.pngbands import BAND_ROWS, NONE, UP, changed, encode


def _image(h: int, w: int, seed: int = 0, channels: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(90, 6, (h, w)).clip(0, 255).astype(np.uint8)
    return np.dstack([base] * channels) if channels else base


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (16, 9), (17, 33), (256, 256), (250, 131)])
@pytest.mark.parametrize("filter_type", [UP, NONE])
def test_readers_decode_the_pixels(shape, filter_type):
    gray = _image(*shape)
    data = encode(gray, filter_type).png()
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), gray)
    with Image.open(BytesIO(data)) as im:
        assert im.mode == "L"
        assert np.array_equal(np.asarray(im), gray)


def test_rgb_and_one_band_decode_the_pixels():
    rgb = _image(40, 21, channels=3)
    with Image.open(BytesIO(encode(rgb).png())) as im:
        assert im.mode == "RGB"
        assert np.array_equal(np.asarray(im), rgb)
    gray = _image(40, 21)
    whole = encode(gray, NONE, band_rows=40)
    assert len(whole.bands) == 1
    assert np.array_equal(np.asarray(Image.open(BytesIO(whole.png()))), gray)


def test_same_pixels_same_bytes():
    gray = _image(64, 64, seed=3)
    assert encode(gray).png() == encode(gray.copy()).png()
    assert encode(gray).png() != encode(gray, NONE).png()


@pytest.mark.parametrize("y0", [0, 3, BAND_ROWS - 3, BAND_ROWS - 1, BAND_ROWS, 2 * BAND_ROWS - 2, 61])
@pytest.mark.parametrize("filter_type", [UP, NONE])
def test_changed_equals_a_fresh_encoding(y0, filter_type):
    """A 3 x 3 window rotated anywhere, band edges included: the re-deflated PNG is byte-identical
    to encoding the new pixels from scratch (the Up filter's next row included)."""
    gray = _image(64, 40, seed=y0)
    base = encode(gray, filter_type)
    new = gray.copy()
    new[y0:y0 + 3, 5:8] = np.rot90(gray[y0:y0 + 3, 5:8])
    assert changed(base, new, y0, y0 + 3).png() == encode(new, filter_type).png()
    assert changed(base, gray, y0, y0 + 3).png() == base.png()


def test_changed_rgb_and_one_band():
    rgb = _image(48, 20, seed=1, channels=3)
    new = rgb.copy()
    new[30:33, 2:5] = np.rot90(rgb[30:33, 2:5], 2)
    assert changed(encode(rgb), new, 30, 33).png() == encode(new).png()
    mask = np.zeros((48, 20), np.uint8)
    mask[30:32, 2:5] = 255
    moved = mask.copy()
    moved[30:33, 2:5] = np.rot90(mask[30:33, 2:5])
    assert changed(encode(mask, NONE, 48), moved, 30, 33).png() == encode(moved, NONE, 48).png()


def test_bad_input_is_refused():
    gray = _image(20, 20)
    base = encode(gray)
    with pytest.raises(ValueError, match="do not match"):
        changed(base, gray[:10], 0, 3)
    with pytest.raises(ValueError, match="not inside"):
        changed(base, gray, 18, 21)
    with pytest.raises(TypeError, match="uint8"):
        encode(gray.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="filter_type"):
        encode(gray, 1)
    with pytest.raises(ValueError, match="band_rows"):
        encode(gray, UP, 0)
    assert pngbands.GRAY == 0 and pngbands.RGB == 2
