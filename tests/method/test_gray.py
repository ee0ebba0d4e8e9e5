"""sirst_synth.method.gray: the gray image the method computes on."""
from __future__ import annotations

import numpy as np

from sirst_synth.method.gray import float_gray, method_gray, rounded_gray


def test_the_gray_of_a_gray_or_equal_channel_image_is_exact_and_a_colour_one_uses_the_601_weights():
    gray = np.random.default_rng(2).integers(0, 256, (7, 11), dtype=np.uint8)
    rgb = np.dstack([gray, gray, gray])
    assert np.array_equal(rounded_gray(rgb), gray) and rounded_gray(gray) is gray
    colour = np.dstack([gray, 255 - gray, gray // 2])
    weights = 0.299 * colour[..., 0] + 0.587 * colour[..., 1] + 0.114 * colour[..., 2]
    assert np.array_equal(float_gray(colour), weights.astype(np.float32))
    assert np.array_equal(float_gray(rgb), gray.astype(np.float32))
    assert np.array_equal(rounded_gray(colour), np.clip(np.rint(float_gray(colour)), 0, 255).astype(np.uint8))


def test_the_method_gray_is_uint8_when_exact_and_float_for_colour_so_it_is_rounded_once():
    gray = np.random.default_rng(3).integers(0, 256, (5, 9), dtype=np.uint8)
    rgb, colour = np.dstack([gray] * 3), np.dstack([gray, 255 - gray, gray // 2])
    assert method_gray(gray) is gray
    assert method_gray(rgb).dtype == np.uint8 and np.array_equal(method_gray(rgb), gray)
    assert method_gray(colour).dtype == np.float32 and np.array_equal(method_gray(colour), float_gray(colour))
    assert np.array_equal(rounded_gray(method_gray(colour)), rounded_gray(colour))
