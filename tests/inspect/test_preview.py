"""preview and preview-noise: the sheets show what the manifest and the noise bank say, pixel for pixel."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pytest

from sirst_synth.inspect.preview import LINE, MARGIN, OUTLINE, PAD, ROTATED, Layout
from sirst_synth.inspect.preview_noise import NoiseLayout

from conftest import run_cli
from support import manifest, read


@pytest.fixture(scope="module")
def built(demo: Path, tmp_path_factory) -> Path:
    """The demo build cut to 250 training images: some sources have displaced images in rounds 0 and 1."""
    out = tmp_path_factory.mktemp("preview") / "demo-5k"
    run_cli("build", "--src", demo, "-o", out, "--total", "250", "-j", "1")
    return out


@pytest.fixture(scope="module")
def bank(demo: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("preview-noise") / "noise.h5"
    run_cli("sample-noise", "--src", demo, "-o", out, "-j", "1")
    return out


@pytest.fixture(scope="module")
def rows(built: Path) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in manifest(built)}


def _negatives_of(rows: dict[str, dict[str, str]], group: str) -> list[str]:
    return [i for i, r in rows.items() if r["kind"] == "negative" and r["group"] == group]


def _sources_by_rounds(rows) -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = defaultdict(dict)
    for id_, r in rows.items():
        if r["kind"] == "displaced":
            out[r["source_id"]][int(r["round"])] = id_
    return out


def _window(cy: int, cx: int, s: int, h: int, w: int) -> tuple[int, int]:
    """docs/method.md section 4: centred s x s window, shifted inward at borders."""
    return min(max(cy - s // 2, 0), h - s), min(max(cx - s // 2, 0), w - s)


def _inset_pixels(sheet: np.ndarray, origin: tuple[int, int], image: np.ndarray, wy: int, wx: int, s: int, z: int):
    """(shown, expected) pixel blocks: the window's z x z blocks on the sheet and the image's window
    enlarged by z, and the centre pixel of every context block against the context crop."""
    h, w = image.shape[:2]
    ctx = s + 2 * MARGIN
    cy0, cx0 = min(max(wy - MARGIN, 0), h - ctx), min(max(wx - MARGIN, 0), w - ctx)
    iy, ix = origin
    rgb = np.repeat(image[..., None], 3, axis=2)
    top, left = iy + (wy - cy0) * z, ix + (wx - cx0) * z
    shown_window = sheet[top : top + s * z, left : left + s * z]
    expected_window = np.kron(rgb[wy : wy + s, wx : wx + s], np.ones((z, z, 1), dtype=np.uint8))
    centres = sheet[iy + z // 2 : iy + ctx * z : z, ix + z // 2 : ix + ctx * z : z]
    return shown_window, expected_window, centres, rgb[cy0 : cy0 + ctx, cx0 : cx0 + ctx]


def test_sheet_size_follows_from_rows_and_negatives(built, rows, tmp_path):
    layout = Layout(tile=256, s=3)
    # the geometry itself: 256 px tiles, insets of 11 x 11 pixels zoomed 11 times, 3 text lines
    assert (layout.z, layout.cell_w, layout.cell_h, layout.header_h) == (11, 256, 256 + 2 + 4 * LINE + 121 + 2, 58)
    sources = _sources_by_rounds(rows)
    picks = sorted(sources)[:3]
    for n in (1, 3):
        out = tmp_path / f"sheet{n}.png"
        run_cli("preview", built, *[a for s in picks[:n] for a in ("--id", s)], "--size", "0", "-o", out)
        negs = [len(_negatives_of(rows, sources[s][min(sources[s])])) for s in picks[:n]]
        h, w = read(out).shape[:2]
        assert h == layout.header_h + n * (layout.cell_h + PAD)
        assert w == PAD + (2 + max(negs)) * (layout.cell_w + PAD)


def test_insets_hold_the_source_pixels_zoomed(built, rows, tmp_path):
    sources = _sources_by_rounds(rows)
    src = next(s for s in sorted(sources) if len(_negatives_of(rows, sources[s][0])) >= 3)
    displaced = sources[src][0]
    out = tmp_path / "sheet.png"
    run_cli("preview", built, "--id", src, "--size", "0", "-o", out)
    sheet = read(out)
    layout = Layout(tile=256, s=3)
    z = layout.z
    before = read(built / "images" / f"{displaced}.png")
    h, w = before.shape
    negs = _negatives_of(rows, displaced)
    for c, neg in enumerate(negs, start=2):
        m = rows[neg]
        s, k = int(m["s"]), int(m["k"])
        wy, wx = _window(int(m["cy"]), int(m["cx"]), s, h, w)
        after = read(built / "images" / f"{neg}.png")
        for which, image in ((0, before), (1, after)):
            shown, expected, centres, crop = _inset_pixels(sheet, layout.inset_origin(0, c, which), image, wy, wx, s, z)
            np.testing.assert_array_equal(shown, expected, err_msg=f"{neg} inset {which}")
            # block centres never lie on the outline, which runs along block edges
            np.testing.assert_array_equal(centres, crop, err_msg=f"{neg} context {which}")
        # and the two insets show the rotation the manifest names
        np.testing.assert_array_equal(after[wy : wy + s, wx : wx + s], np.rot90(before[wy : wy + s, wx : wx + s], k))
        # the rotated window is outlined in magenta, one pixel outside its blocks
        iy, ix = layout.inset_origin(0, c, 1)
        ctx = s + 2 * MARGIN
        cy0, cx0 = min(max(wy - MARGIN, 0), h - ctx), min(max(wx - MARGIN, 0), w - ctx)
        assert tuple(sheet[iy + (wy - cy0) * z - 1, ix + (wx - cx0) * z + z]) == ROTATED


def test_gray_stays_gray_and_every_target_window_is_outlined(built, rows, tmp_path, demo):
    src = sorted(_sources_by_rounds(rows))[0]
    out = tmp_path / "sheet.png"
    run_cli("preview", built, "--id", src, "--size", "0", "-o", out)
    sheet = read(out)
    layout = Layout(tile=256, s=3)
    y, x = layout.cell(0, 0)
    tile = sheet[y : y + 256, x : x + 256]
    original = read(demo / "images" / f"{src}.png")
    same = (tile == original[..., None]).all(axis=2)
    outline = (tile == OUTLINE).all(axis=2)
    assert (same | outline).all()                              # image pixels unchanged, gray (R = G = B)
    assert same.mean() > 0.95
    mask = read(built / "masks" / f"{src}.png")
    from support import centroids

    for cy, cx in centroids(mask):                             # a red box 2 px outside each window
        wy, wx = _window(cy, cx, 3, *mask.shape)
        ring = [(wy - 2, wx + 1), (wy + 4, wx + 1), (wy + 1, wx - 2), (wy + 1, wx + 4)]
        assert any(outline[p] for p in ring if 0 <= p[0] < 256 and 0 <= p[1] < 256), (src, cy, cx)


def test_rows_follow_the_manifest(built, rows, tmp_path):
    from sirst_synth.inspect.preview import choose_rows

    sources = _sources_by_rounds(rows)
    two_rounds = next(s for s in sorted(sources) if len(sources[s]) > 1)
    r0, r1 = sources[two_rounds][0], sources[two_rounds][1]
    [row] = choose_rows(rows, [two_rounds])                    # default: the lowest round
    assert (row.original, row.displaced, row.negatives) == (two_rounds, r0, _negatives_of(rows, r0))
    [row] = choose_rows(rows, [two_rounds], round_=1)
    assert (row.displaced, row.negatives) == (r1, _negatives_of(rows, r1))
    neg = _negatives_of(rows, r1)[-1]
    assert choose_rows(rows, [neg])[0].displaced == r1          # a negative id shows its group
    drawn = choose_rows(rows, n=4, seed=0)
    assert len(drawn) == 4 and drawn == choose_rows(rows, n=4, seed=0) != choose_rows(rows, n=4, seed=1)
    assert all(r.displaced in sources[r.source_id].values() for r in drawn)
    only_r1 = choose_rows(rows, n=100, round_=1)
    assert sorted(r.source_id for r in only_r1) == sorted(s for s in sources if 1 in sources[s])


def test_preview_is_deterministic_and_refuses_bad_input(built, demo, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    run_cli("preview", built, "-n", "2", "--tile", "96", "-o", a)
    run_cli("preview", built, "-n", "2", "--tile", "96", "-o", b)
    assert a.read_bytes() == b.read_bytes()
    r = run_cli("preview", built, "-n", "2", "-o", a, expect=1)
    assert r.output.strip().splitlines() == [f"error: {a}: exists; use --force to replace it"]
    r = run_cli("preview", built, "--id", "nope", "-o", tmp_path / "c.png", expect=1)
    assert r.output.strip() == "error: id 'nope': not in the manifest"
    r = run_cli("preview", demo, "-o", tmp_path / "d.png", expect=1)
    assert "no manifest.csv" in r.output and r.output.count("\n") == 1
    r = run_cli("preview", built, "-o", tmp_path / "e.jpg", expect=1)
    assert "ending in .png" in r.output
    r = run_cli("preview", built, "--round", "7", "-o", tmp_path / "f.png", expect=1)
    assert "no displaced image of round 7" in r.output
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "f.png").exists()
    r = run_cli("preview", built, "-n", "0", "-o", tmp_path / "g.png", expect=1)
    assert r.output.strip() == "error: -n must be >= 1, got 0"


def test_noise_sheet_shows_the_bank_patches(bank, tmp_path):
    from sirst_synth.inspect.preview_noise import choose_patches

    out, raw = tmp_path / "bank.png", tmp_path / "raw.png"
    run_cli("preview-noise", bank, "-n", "10", "-o", out)
    run_cli("preview-noise", bank, "-n", "10", "--raw", "-o", raw)
    with h5py.File(bank) as f:
        shapes, offsets, pixels = f["shape"][()], f["offset"][()], f["pixels"][()]
        count = len(offsets)
    chosen = choose_patches(count, 10, 0)
    assert len(chosen) == 10 == len(set(chosen))
    side = int(shapes[chosen].max())
    z = max(1, 96 // side)
    layout = NoiseLayout(columns=4, side=side * z, z=z)         # ceil(sqrt(10)) = 4 columns, 3 rows
    sheet, raw_sheet = read(out), read(raw)
    assert sheet.shape[:2] == layout.size(10) == (layout.header_h + 3 * (layout.cell_h + PAD) + layout.strip_h,
                                                  PAD + 4 * (layout.cell_w + PAD))
    for i, index in enumerate(chosen):
        ph, pw = (int(v) for v in shapes[index])
        patch = pixels[offsets[index] : offsets[index] + ph * pw].reshape(ph, pw).astype(np.float64)
        stretched = np.rint((patch - patch.min()) * 255.0 / (patch.max() - patch.min())).astype(np.uint8)
        y, x = layout.cell(i)
        for shown, expected in ((sheet, stretched), (raw_sheet, np.clip(np.rint(patch), 0, 255).astype(np.uint8))):
            block = shown[y : y + ph * z, x : x + pw * z]
            zoomed = np.kron(expected, np.ones((z, z), dtype=np.uint8))
            np.testing.assert_array_equal(block, np.repeat(zoomed[..., None], 3, axis=2))
    r = run_cli("preview-noise", tmp_path / "bank.png", "-o", tmp_path / "x.png", expect=1)
    assert "not a readable noise bank" in r.output
