"""Property tests (hypothesis) of the pure functions: docs/method.md sections 1-4 hold for random sizes
(1x1 up to 512x640), random masks (empty, full, touching borders, many components), random odd
``s`` and ``alpha`` in [0, 1]; nothing raises but the documented errors.

Arrays are made by numpy from a drawn seed (fast for 512x640); hypothesis draws the sizes, kinds
and seeds, and shrinks a failure to the smallest of them. No example database is written.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from sirst_synth.errors import PlanError
from sirst_synth.method.displace import fit_noise, mix
from sirst_synth.method.negatives import ROTATIONS, check_window_size, negatives, rotate_window, window_origin
from sirst_synth.method.noise import crop, grid_boxes, noise_prone_regions
from sirst_synth.method.targets import find_targets
from sirst_synth.plan.draws import NoiseDrawer
from sirst_synth.plan.units import next_batch, plan_units, round_order

MAX_H, MAX_W = 512, 640
MASK_KINDS = ("empty", "full", "border", "many", "blobs")


def props(n: int):
    """hypothesis settings: ``n`` examples, no deadline, no database folder in the repository."""
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# -- data ---------------------------------------------------------------------------------------

def make_mask(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    """A (h, w) uint8 mask of ``kind``; target pixels take random values in 1..255."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    if kind == "full":
        mask[:] = rng.integers(1, 256)
    elif kind == "border":  # rectangles glued to edges and corners
        for _ in range(int(rng.integers(1, 6))):
            rh, rw = int(rng.integers(1, max(1, h // 3) + 1)), int(rng.integers(1, max(1, w // 3) + 1))
            y = (0, h - rh, int(rng.integers(0, h - rh + 1)))[int(rng.integers(3))]
            x = (0, w - rw, int(rng.integers(0, w - rw + 1)))[int(rng.integers(3))]
            mask[y:y + rh, x:x + rw] = rng.integers(1, 256)
    elif kind == "many":  # scattered pixels: many small 8-connected components
        density = float(rng.uniform(0.01, 0.3))
        mask[rng.random((h, w)) < density] = rng.integers(1, 256)
    elif kind == "blobs":
        for _ in range(int(rng.integers(1, 8))):
            y, x = int(rng.integers(h)), int(rng.integers(w))
            mask[y:y + int(rng.integers(1, 6)), x:x + int(rng.integers(1, 6))] = rng.integers(1, 256)
    return mask


@st.composite
def sizes(draw, min_side: int = 1, max_h: int = MAX_H, max_w: int = MAX_W) -> tuple[int, int]:
    return draw(st.integers(min_side, max_h)), draw(st.integers(min_side, max_w))


SEEDS = st.integers(0, 2**32 - 1)


@st.composite
def masks(draw, max_h: int = MAX_H, max_w: int = MAX_W) -> np.ndarray:
    h, w = draw(sizes(max_h=max_h, max_w=max_w))
    return make_mask(draw(st.sampled_from(MASK_KINDS)), h, w, draw(SEEDS))


def make_gray(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    """A float32 (h, w) gray image, 0..255: integer levels, flat, low noise, or non-integer levels."""
    rng = np.random.default_rng(seed)
    if kind == "uint8":
        return rng.integers(0, 256, (h, w)).astype(np.float32)
    if kind == "flat":
        levels = [0.0, 255.0, float(rng.integers(1, 255)), rng.uniform(0, 255)]   # non-integer: colour sources
        return np.full((h, w), levels[int(rng.integers(4))], np.float32)
    level = rng.uniform(0, 255)
    gray = level + rng.normal(0, rng.uniform(0.5, 12), (h, w))
    if kind == "low_int":
        gray = np.rint(gray)
    return np.clip(gray, 0, 255).astype(np.float32)


GRAY_KINDS = ("uint8", "flat", "low", "low_int")


def make_image(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    """A uint8 image, (h, w) or (h, w, channels), with flat areas (so rotations may repeat)."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    image = rng.integers(0, 256, shape).astype(np.uint8)
    if rng.random() < 0.5:
        image[rng.random((h, w)) < 0.5] = rng.integers(0, 256)
    return image


def labels_reference(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """(cy, cx, area) of the 8-connected components of mask > 0, in raster order of their first
    pixel, by breadth-first search; centre = mean rounded half up, in exact integer arithmetic."""
    h, w = mask.shape
    seen = np.zeros((h, w), bool)
    found = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, ys, xs = deque([(y0, x0)]), 0, 0
        area = 0
        while queue:
            y, x = queue.popleft()
            area, ys, xs = area + 1, ys + int(y), xs + int(x)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        found.append(((2 * ys + area) // (2 * area), (2 * xs + area) // (2 * area), area))
    return found


# -- targets (docs/method.md 1) ---

@props(150)
@given(masks(max_h=48, max_w=60))
def test_targets_are_the_8_connected_components_with_rounded_centroids(mask):
    targets = find_targets(mask)
    assert [t.label for t in targets] == list(range(1, len(targets) + 1))
    # the same components; their order is OpenCV's label order (2x2-block raster order)
    assert sorted((t.cy, t.cx, t.area) for t in targets) == sorted(labels_reference(mask))


@props(60)
@given(masks())
def test_targets_cover_every_target_pixel_at_any_size(mask):
    h, w = mask.shape
    targets = find_targets(mask)
    assert sum(t.area for t in targets) == int((mask > 0).sum())
    assert all(0 <= t.cy < h and 0 <= t.cx < w and t.area >= 1 for t in targets)
    if (mask > 0).all():
        assert [(t.cy, t.cx, t.area) for t in targets] == [(h // 2, w // 2, h * w)]  # (h-1)/2 rounded half up
    if not mask.any():
        assert targets == []


# -- noise sampling (docs/method.md 2) ---

@props(80)
@given(sizes(), st.integers(1, 16))
def test_grid_regions_tile_the_floor_grid(size, grid):
    h, w = size
    rh, rw = h // grid, w // grid
    if rh < 1 or rw < 1:
        with pytest.raises(ValueError, match="does not fit"):
            grid_boxes(h, w, grid)
        return
    boxes = grid_boxes(h, w, grid)
    assert [(r, c) for r, c, _ in boxes] == [(r, c) for r in range(grid) for c in range(grid)]  # all g*g regions
    cover = np.zeros((h, w), np.int32)
    for r, c, (y0, x0, y1, x1) in boxes:
        assert (y1 - y0, x1 - x0) == (rh, rw) and (y0, x0) == (r * rh, c * rw)
        cover[y0:y1, x0:x1] += 1
    assert (cover[:grid * rh, :grid * rw] == 1).all()          # disjoint, no gap
    assert cover[grid * rh:].sum() == 0 and cover[:, grid * rw:].sum() == 0


@props(120)
@given(sizes(), st.sampled_from(GRAY_KINDS), st.sampled_from(MASK_KINDS), SEEDS, st.integers(1, 12),
       st.floats(0.5, 400), st.floats(1, 255))
@example((64, 64), "flat", "empty", 0, 8, 50.0, 255.0)
def test_noise_regions_are_exactly_the_flat_target_free_ones(size, gray_kind, mask_kind, seed, grid, max_var, max_mean):
    h, w = size
    assume(h >= grid and w >= grid)
    gray, mask = make_gray(gray_kind, h, w, seed), make_mask(mask_kind, h, w, seed + 1)
    kept = noise_prone_regions(gray, mask, grid, max_var, max_mean)
    by_cell = {(r.row, r.col): r for r in kept}
    assert len(by_cell) == len(kept)
    for row, col, box in grid_boxes(h, w, grid):
        y0, x0, y1, x1 = box
        region = gray[y0:y1, x0:x1].astype(np.float64)
        flat = bool((region == region.flat[0]).all())       # the true variance is 0 exactly
        var, mean = float(region.var()), float(region.mean())
        wanted = (not flat and var < max_var and region.any() and mean < max_mean
                  and not (mask[y0:y1, x0:x1] > 0).any())
        assert ((row, col) in by_cell) == wanted, (row, col, var, mean)
        if wanted:
            r = by_cell[(row, col)]
            assert r.box == box and 0 < r.var < max_var and 0 < r.mean < max_mean
            assert r.var == pytest.approx(var) and r.mean == pytest.approx(mean)
            patch = crop(gray, r.box)
            assert patch.dtype == np.float32 and patch.shape == (y1 - y0, x1 - x0)
            assert np.array_equal(patch, gray[y0:y1, x0:x1])


# -- displacement (docs/method.md 3) ---

@props(80)
@given(sizes(), sizes(max_h=64, max_w=64), SEEDS, st.sampled_from(["resize", "tile"]))
def test_fitted_noise_has_the_image_size(size, patch_size, seed, fit):
    h, w = size
    patch = np.random.default_rng(seed).uniform(0, 255, patch_size).astype(np.float32)
    noise = fit_noise(patch, h, w, fit)
    assert noise.shape == (h, w) and noise.dtype == np.float32
    if fit == "tile":                                      # the patch repeated, grain kept
        ph, pw = patch_size
        assert np.array_equal(noise, patch[np.arange(h)[:, None] % ph, np.arange(w)[None, :] % pw])
    else:                                                  # bilinear: within the patch's range
        assert patch.min() - 1e-3 <= noise.min() and noise.max() <= patch.max() + 1e-3
    flat = np.full(patch_size, 37.25, np.float32)
    assert np.allclose(fit_noise(flat, h, w, fit), 37.25)


def test_unknown_fit_is_refused():
    with pytest.raises(ValueError, match="fit must be one of"):
        fit_noise(np.zeros((2, 2), np.float32), 4, 4, "stretch")


ALPHAS = st.one_of(st.sampled_from([0.0, 1.0, 0.1, 0.5]), st.floats(0.0, 1.0))


@props(80)
@given(sizes(), st.sampled_from([1, 3]), SEEDS, ALPHAS)
def test_mix_is_the_formula_rounded_and_clipped(size, channels, seed, alpha):
    h, w = size
    image = make_image(h, w, channels, seed)
    noise = np.random.default_rng(seed + 1).uniform(0, 255, (h, w)).astype(np.float32)
    out = mix(image, noise, alpha)
    assert out.dtype == np.uint8 and out.shape == image.shape          # channel layout kept
    n = noise.astype(np.float64) if channels == 1 else noise.astype(np.float64)[..., None]
    exact = np.clip(alpha * n + (1 - alpha) * image.astype(np.float64), 0, 255)
    assert np.abs(out - exact).max() <= 0.5 + 1e-3                     # rounded to nearest
    if alpha == 0.0:
        assert np.array_equal(out, image)
    if alpha == 1.0:
        expected = np.clip(np.rint(noise), 0, 255).astype(np.uint8)
        assert np.array_equal(out, expected if channels == 1 else np.repeat(expected[..., None], channels, -1))
    if channels > 1:                                                   # the same gray noise on every channel
        for c in range(channels):
            assert np.array_equal(out[..., c], mix(np.ascontiguousarray(image[..., c]), noise, alpha))


@props(30)
@given(st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0 + 1e-9), st.just(float("nan"))))
def test_alpha_outside_0_1_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha must be in"):
        mix(np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.float32), alpha)


# -- negatives (docs/method.md 4) ---

@st.composite
def odd_s(draw, h: int, w: int) -> int:
    return 2 * draw(st.integers(0, (min(h, w) - 1) // 2)) + 1


@props(150)
@given(sizes(), st.data())
def test_window_is_inside_and_centred_when_it_fits(size, data):
    h, w = size
    s = data.draw(odd_s(h, w))
    cy, cx = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    y0, x0 = window_origin(cy, cx, s, h, w)
    half = s // 2
    assert 0 <= y0 <= h - s and 0 <= x0 <= w - s                           # shifted inward, never shrunk
    assert y0 <= cy < y0 + s and x0 <= cx < x0 + s                         # the centre stays in the window
    if half <= cy < h - half:
        assert y0 == cy - half
    if half <= cx < w - half:
        assert x0 == cx - half


@props(60)
@given(sizes(max_h=40, max_w=40), st.integers(-3, 60), SEEDS)
def test_bad_s_is_the_documented_error(size, s, seed):
    h, w = size
    image, mask = make_image(h, w, 1, seed), make_mask("blobs", h, w, seed)
    if s >= 1 and s % 2 == 1 and s <= min(h, w):
        check_window_size(s, h, w)
        list(negatives(image, mask, find_targets(mask), s))
        return
    with pytest.raises(ValueError, match="odd and >= 1" if s < 1 or s % 2 == 0 else "larger than"):
        list(negatives(image, mask, find_targets(mask), s))


@props(100)
@given(sizes(), st.sampled_from(MASK_KINDS), st.sampled_from([1, 3]), SEEDS, st.data())
@example((1, 1), "full", 1, 0, None).via("1x1 image, s = 1: every rotation repeats, no negative")
def test_negatives_rotate_only_their_window_and_never_repeat(size, mask_kind, channels, seed, data):
    h, w = size
    s = 1 if data is None else data.draw(odd_s(h, w))
    image, mask = make_image(h, w, channels, seed), make_mask(mask_kind, h, w, seed + 1)
    targets = find_targets(mask)[:6]                # a few targets keep 3 copies per target cheap
    negs = list(negatives(image, mask, targets, s))
    assert [(n.target.label, n.k) for n in negs] == sorted((n.target.label, n.k) for n in negs)  # label order, k up
    for n in negs:
        assert n.k in ROTATIONS and (n.y0, n.x0) == window_origin(n.target.cy, n.target.cx, s, h, w)
        y, x = slice(n.y0, n.y0 + s), slice(n.x0, n.x0 + s)
        for out, src in ((n.image, image), (n.mask, mask)):
            assert out.dtype == src.dtype and out.shape == src.shape
            assert np.array_equal(out[y, x], np.rot90(src[y, x], n.k))   # counter-clockwise k * 90 degrees
            outside = out.copy()
            outside[y, x] = src[y, x]
            assert np.array_equal(outside, src)                          # only that window changes
    views = [image.tobytes()] + [n.image.tobytes() for n in negs]
    assert len(set(views)) == len(views)                                 # no two views byte-identical
    # a rotation is skipped only when it repeats the input or an earlier view
    candidates = {rotate_window(image, *window_origin(t.cy, t.cx, s, h, w), s, k).tobytes()
                  for t in targets for k in ROTATIONS}
    assert len(negs) == len(candidates - {image.tobytes()})
    if s == 1 or not targets:
        assert negs == []


@props(150)
@given(sizes(min_side=3, max_h=9, max_w=9), st.integers(1, 3), SEEDS, st.data())
def test_comparing_windows_skips_exactly_the_whole_image_repeats(size, levels, seed, data):
    """Small images with few gray levels and many targets: windows overlap, coincide at borders
    and repeat one another. The negatives must be exactly those a whole-image comparison keeps."""
    h, w = size
    s = data.draw(st.sampled_from([k for k in (1, 3, 5) if k <= min(h, w)]))
    rng = np.random.default_rng(seed)
    image = rng.integers(0, levels, (h, w)).astype(np.uint8)
    mask = (rng.random((h, w)) < 0.4).astype(np.uint8) * 255
    targets = find_targets(mask)
    seen, expected = [image.tobytes()], []
    for t in targets:
        y0, x0 = window_origin(t.cy, t.cx, s, h, w)
        for k in ROTATIONS:
            view = rotate_window(image, y0, x0, s, k).tobytes()
            if view not in seen:
                seen.append(view)
                expected.append((t.label, k))
    assert [(n.target.label, n.k) for n in negatives(image, mask, targets, s)] == expected


# -- the plan (docs/method.md 3, 5) ---

IDS = [f"{i:06d}" for i in range(12)]


@st.composite
def banks(draw) -> list[str]:
    """A bank's per-patch source ids (some images have no patch, some many)."""
    return draw(st.lists(st.sampled_from(IDS[:8]), min_size=1, max_size=40))


@props(120)
@given(banks(), SEEDS, st.integers(1, 6))
def test_noise_drawer_never_repeats_and_avoids_the_image_itself(bank, seed, rounds):
    drawer = NoiseDrawer(bank, seed)
    for id_ in IDS:
        others = sum(src != id_ for src in bank)
        usable = others if others else len(bank)
        if rounds > usable:
            with pytest.raises(PlanError, match=repr(id_)):
                drawer.check_capacity([id_], rounds)
        else:
            drawer.check_capacity([id_], rounds)
        drawn = [drawer.draw(id_, r) for r in range(min(rounds, usable))]
        assert len(set(drawn)) == len(drawn) and all(0 <= i < len(bank) for i in drawn)   # never the same patch
        if others:
            assert all(bank[i] != id_ for i in drawn)                                     # another source
        if rounds > usable:
            with pytest.raises(PlanError):
                drawer.draw(id_, usable)
    # draws depend on (seed, round, image) alone, not on the order they are asked in
    again = NoiseDrawer(bank, seed)
    for id_ in reversed(IDS):
        usable = sum(src != id_ for src in bank) or len(bank)
        n = min(rounds, usable)
        if n:
            again.draw(id_, n - 1)
            assert [again.draw(id_, r) for r in range(n)] == [drawer.draw(id_, r) for r in range(n)]


@props(60)
@given(banks(), SEEDS, st.sampled_from(IDS))
def test_noise_drawer_avoids_the_named_source(bank, seed, source):
    drawer = NoiseDrawer(bank, seed)
    if any(src != source for src in bank):
        assert bank[drawer.draw("some-displaced-image", 0, source)] != source


@props(100)
@given(st.lists(st.text(min_size=1, max_size=5), max_size=30, unique=True), SEEDS, st.integers(0, 5))
def test_round_order_is_a_seeded_permutation(ids, seed, round_):
    order = round_order(ids, seed, round_)
    assert sorted(order) == sorted(ids) and order == round_order(ids, seed, round_)
    units = plan_units(ids, seed)
    if ids:
        head = [next(units) for _ in range(2 * len(ids))]
        assert head == [(0, i) for i in round_order(ids, seed, 0)] + [(1, i) for i in round_order(ids, seed, 1)]
    else:
        assert list(units) == []


@props(150)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=20), st.integers(-2, 100), st.integers(0, 60))
def test_next_batch_is_the_shortest_prefix_that_can_reach_needed(sizes_, needed, length):
    ids = [f"i{n}" for n in range(len(sizes_))]
    max_sizes = dict(zip(ids, sizes_))
    stream = [(0, ids[n % len(ids)]) for n in range(length)]
    units = iter(stream)
    batch = next_batch(units, max_sizes, needed)
    assert batch == stream[:len(batch)]
    reach = [max_sizes[i] for _, i in batch]
    if needed <= 0:
        assert batch == []
    elif sum(reach) >= needed:
        assert sum(reach[:-1]) < needed               # shortest: without its last unit it cannot reach
    else:
        assert batch == stream                        # the plan ran out first
    assert list(units) == stream[len(batch):]         # takes nothing beyond the batch


@props(100)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=20), st.integers(1, 100), st.integers(0, 60),
       st.integers(1, 30))
def test_next_batch_limit_only_shortens_the_batch(sizes_, needed, length, limit):
    ids = [f"i{n}" for n in range(len(sizes_))]
    max_sizes = dict(zip(ids, sizes_))
    stream = [(0, ids[n % len(ids)]) for n in range(length)]
    full = next_batch(iter(stream), max_sizes, needed)
    units = iter(stream)
    assert next_batch(units, max_sizes, needed, limit) == full[:limit]
    assert list(units) == stream[len(full[:limit]):]
