"""The pure functions of the method (docs/method.md sections 1-4), one rule per test."""
from __future__ import annotations

import numpy as np
import pytest

from sirst_synth.errors import PlanError
from sirst_synth.method.displace import displace, fit_noise, mix
from sirst_synth.method.negatives import negatives, rotate_window, window_origin
from sirst_synth.method.noise import grid_boxes, noise_prone_regions
from sirst_synth.method.targets import find_targets
from sirst_synth.plan.draws import NoiseDrawer
from sirst_synth.plan.seeding import rng_for
from sirst_synth.plan.units import next_batch, plan_units, round_order


def test_targets_are_8_connected_with_rounded_centroids():
    mask = np.zeros((10, 10), np.uint8)
    mask[1, 1] = mask[2, 2] = 255          # diagonal neighbours: one target, centroid (1.5, 1.5) -> (2, 2)
    mask[6:8, 6:9] = 1                     # any value > 0 is target; centroid (6.5, 7) -> (7, 7)
    targets = find_targets(mask)
    assert [(t.cy, t.cx, t.area) for t in targets] == [(2, 2, 2), (7, 7, 6)]
    assert [t.label for t in targets] == [1, 2]
    assert find_targets(np.zeros((4, 4), np.uint8)) == []


def test_grid_covers_all_g_by_g_regions():
    boxes = grid_boxes(256, 256, 8)
    assert len(boxes) == 64 and boxes[-1] == (7, 7, (224, 224, 256, 256))
    assert grid_boxes(100, 70, 8)[-1][2] == (84, 56, 96, 64)  # floor(h/g) x floor(w/g) regions


def test_noise_regions_keep_flat_target_free_regions_only():
    rng = np.random.default_rng(0)
    gray = np.full((64, 64), 100.0, np.float32) + rng.normal(0, 2, (64, 64)).astype(np.float32)
    gray[:32, :32] = rng.uniform(0, 255, (32, 32))   # textured: var >= 50
    gray[32:, 32:] = 100.0                             # constant: var == 0 is not noise
    mask = np.zeros((64, 64), np.uint8)
    mask[5, 40] = 255                                  # target inside region (0, 1)
    kept = noise_prone_regions(gray, mask, grid=2, max_var=50, max_mean=255)
    assert [(r.row, r.col) for r in kept] == [(1, 0)]
    assert 0 < kept[0].var < 50 and kept[0].box == (32, 0, 64, 32)
    assert noise_prone_regions(gray, mask, grid=2, max_var=50, max_mean=90) == []


@pytest.mark.parametrize("height, width, grid", [(64, 64, 8), (100, 70, 8), (257, 131, 5), (1024, 512, 2)])
def test_noise_regions_equal_each_regions_own_mean_and_var_bit_for_bit(height, width, grid):
    """All regions measured at once give the values ``region.var()`` / ``region.mean()`` of each
    region alone (so the bank, and every draw from it, is the definition's), ragged edges and
    regions larger than numpy's 8192-element buffer included."""
    rng = np.random.default_rng(height + grid)
    gray = (rng.random((height, width)) * 40 + rng.random((height, width)) * 0.37 + 60).astype(np.float32)
    mask = np.zeros((height, width), np.uint8)
    mask[rng.integers(0, height, 3), rng.integers(0, width, 3)] = 255
    expected = []
    for row, col, (y0, x0, y1, x1) in grid_boxes(height, width, grid):
        region = gray[y0:y1, x0:x1].astype(np.float64)
        var, mean = float(region.var()), float(region.mean())
        if not mask[y0:y1, x0:x1].any() and 0 < var < 200 and 0 < mean < 255:
            expected.append((row, col, (y0, x0, y1, x1), var, mean))
    kept = noise_prone_regions(gray, mask, grid, max_var=200, max_mean=255)
    assert [(r.row, r.col, r.box, r.var, r.mean) for r in kept] == expected
    assert len(expected) >= grid * grid - 3


def test_mix_is_the_section_3_formula_in_float32():
    image = np.array([[0, 100, 255]], np.uint8)
    noise = np.array([[255.0, 50.0, 0.0]], np.float32)
    assert mix(image, noise, 0.1).tolist() == [[26, 95, 230]]   # 0.1 * 255 is 25.500002 in float32
    assert np.array_equal(mix(image, noise, 0.0), image)
    rgb = np.stack([image] * 3, -1)
    assert np.array_equal(mix(rgb, noise, 0.1), np.stack([mix(image, noise, 0.1)] * 3, -1))
    with pytest.raises(ValueError):
        mix(image, noise, 1.5)


def test_fit_noise_resizes_bilinear_or_tiles():
    patch = np.arange(4, dtype=np.float32).reshape(2, 2)
    assert fit_noise(patch, 5, 3, "tile").tolist() == [[0, 1, 0], [2, 3, 2], [0, 1, 0], [2, 3, 2], [0, 1, 0]]
    resized = fit_noise(patch, 4, 4, "resize")
    assert resized.shape == (4, 4) and resized.min() == 0 and resized.max() == 3
    assert displace(np.zeros((4, 4), np.uint8), patch, 1.0, "tile").tolist()[0] == [0, 1, 0, 1]


def test_window_is_centred_and_shifted_inward_at_borders():
    assert window_origin(5, 5, 3, 10, 10) == (4, 4)
    assert window_origin(0, 9, 3, 10, 10) == (0, 7)
    assert window_origin(9, 0, 5, 10, 10) == (5, 0)
    for bad in (0, 2, -1):
        with pytest.raises(ValueError):
            window_origin(5, 5, bad, 10, 10)
    with pytest.raises(ValueError):
        window_origin(1, 1, 5, 4, 10)


def test_negatives_rotate_only_the_target_window_and_skip_repeats():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    mask = np.zeros((10, 10), np.uint8)
    mask[4:6, 5] = 255                      # centroid (4.5, 5) -> (5, 5)
    mask[0, 0] = 255                        # border target: window shifted to (0, 0)
    image[:3, :3] = 200                     # uniform window: every rotation repeats -> skipped
    negs = list(negatives(image, mask, find_targets(mask), 3))
    assert [(n.target.label, n.k) for n in negs] == [(2, 1), (2, 2), (2, 3)]
    for n in negs:
        assert (n.y0, n.x0) == (4, 4)
        assert np.array_equal(n.image, rotate_window(image, 4, 4, 3, n.k))
        assert np.array_equal(n.mask[4:7, 4:7], np.rot90(mask[4:7, 4:7], n.k))
        changed = np.argwhere(n.image != image)
        assert changed.min(0).tolist() >= [4, 4] and changed.max(0).tolist() <= [6, 6]


def test_symmetric_window_keeps_only_distinct_rotations():
    image = np.zeros((5, 5), np.uint8)
    image[1:4, 1:4] = [[1, 2, 1], [2, 9, 2], [1, 2, 1]]   # 90-degree symmetric: all rotations repeat
    mask = (image == 9).astype(np.uint8)
    assert list(negatives(image, mask, find_targets(mask), 3)) == []
    image[1:4, 1:4] = [[1, 2, 3], [4, 9, 4], [3, 2, 1]]   # 180-degree symmetric: k=2 repeats
    assert [n.k for n in negatives(image, mask, find_targets(mask), 3)] == [1]


def test_generators_depend_on_seed_and_key_only():
    assert rng_for(0, "displace", 0, "a").integers(1 << 30) == rng_for(0, "displace", 0, "a").integers(1 << 30)
    assert rng_for(0, "displace", 0, "a").integers(1 << 30) != rng_for(1, "displace", 0, "a").integers(1 << 30)
    assert rng_for(0, "x", 1).integers(1 << 30) != rng_for(0, "x", "1").integers(1 << 30)


def test_noise_draws_avoid_own_source_and_repeats():
    sources = ["a", "a", "b", "b", "c"]
    drawer = NoiseDrawer(sources, seed=0)
    drawn = [drawer.draw("a", r) for r in range(3)]
    assert sorted(drawn) == [2, 3, 4]                       # never a's own patches, never twice
    with pytest.raises(PlanError, match="too few patches"):
        drawer.draw("a", 3)
    only_own = NoiseDrawer(["a", "a"], seed=0)
    assert sorted(only_own.draw("a", r) for r in range(2)) == [0, 1]
    assert NoiseDrawer(sources, 0).draw("b", 0) == NoiseDrawer(sources, 0).draw("b", 0)


def test_plan_visits_every_image_each_round_in_a_seeded_order():
    ids = [f"{i:03d}" for i in range(20)]
    units = plan_units(ids, seed=0)
    first = [next(units) for _ in range(40)]
    assert [r for r, _ in first] == [0] * 20 + [1] * 20
    assert sorted(i for _, i in first[:20]) == ids and [i for _, i in first[:20]] == round_order(ids, 0, 0)
    assert round_order(ids, 0, 0) != round_order(ids, 0, 1)


def test_batches_stop_where_the_largest_possible_output_reaches_the_need():
    units = iter([(0, "a"), (0, "b"), (0, "c")])
    assert next_batch(units, {"a": 4, "b": 1, "c": 7}, 5) == [(0, "a"), (0, "b")]
    assert next_batch(units, {"a": 4, "b": 1, "c": 7}, 100) == [(0, "c")]


def test_overlapping_windows_that_make_the_same_image_keep_the_first():
    # windows at (0, 0) and (0, 1) overlap; rotating the first by 180 degrees and the second by 90
    # both move the one bright pixel to (2, 1): the same image, so the second is skipped
    image = np.zeros((3, 4), np.uint8)
    image[0, 1] = 9
    mask = np.zeros((3, 4), np.uint8)
    mask[1, 0] = mask[1, 3] = 255            # two targets; their windows are shifted inward to x0 = 0 and 1
    negs = list(negatives(image, mask, find_targets(mask), 3))
    assert [(n.target.label, n.x0, n.k) for n in negs] == [(1, 0, 1), (1, 0, 2), (1, 0, 3), (2, 1, 2), (2, 1, 3)]
    assert np.array_equal(rotate_window(image, 0, 0, 3, 2), rotate_window(image, 0, 1, 3, 1))
    assert len({n.image.tobytes() for n in negs} | {image.tobytes()}) == len(negs) + 1
