"""Generated images are 8-bit gray (``channels`` 3: R=G=B), masks 8-bit gray, and the trainers of
the field read them as they read an RGB copy. Loaders are written from their public code:

- DNANet: ``Image.open(img).convert('RGB')``; mask ``np.array(Image.open(mask), dtype=np.float32) / 255``
- BasicIRSTD: ``Image.open(img).convert('I')``; mask the same, ``[:, :, 0]`` when 3-D.

Also: a worker's kept sources (the decode cache) never change what a unit writes.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sirst_synth.method.gray import method_gray
from sirst_synth.method.targets import find_targets
from sirst_synth.run import sources as jobs
from sirst_synth.run.jobs import NoiseDraw, Place, run_job
from sirst_synth.run.sources import SourceCache
from sirst_synth.run.stages.build import BuildJob
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.manifest import new_row
from sirst_synth.store.noisebank import NoiseBank

from conftest import run_cli
from support import manifest

SPLIT = "50_50"


def dnanet_image(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def basicirstd_image(path) -> np.ndarray:
    return np.array(Image.open(path).convert("I"), dtype=np.float32)


def mask_as_loaded(path) -> np.ndarray:
    """DNANet's and BasicIRSTD's mask read: the PNG as Pillow opens it, / 255 (first channel if 3-D)."""
    mask = np.array(Image.open(path), dtype=np.float32) / 255.0
    return mask[:, :, 0] if mask.ndim == 3 else mask


@pytest.fixture(scope="module")
def small_build(tmp_path_factory) -> Path:
    """A small build of RGB (R=G=B) demo data, as NUDT-SIRST stores its images."""
    tmp = tmp_path_factory.mktemp("enc")
    run_cli("demo-data", tmp / "demo", "-n", "24")
    src = tmp / "demo"
    for path in (src / "images").iterdir():
        gray = np.asarray(Image.open(path).convert("L"))
        path.write_bytes(imageio.encode_png(np.dstack([gray] * 3)))
    run_cli("build", "--src", src, "-o", tmp / "out", "--total", "60", "-j", "1")
    return tmp / "out"


def test_the_loaders_read_a_gray_generated_image_as_its_rgb_copy(small_build: Path, tmp_path: Path) -> None:
    rows = manifest(small_build)
    picked = [next(r for r in rows if r["kind"] == kind) for kind in ("displaced", "negative")]
    for r in picked:
        gray_path = small_build / "images" / f"{r['id']}.png"
        assert Image.open(gray_path).mode == "L"
        rgb_path = tmp_path / f"{r['id']}-rgb.png"
        Image.open(gray_path).convert("RGB").save(rgb_path)  # what the build wrote before: R=G=B
        for load in (dnanet_image, basicirstd_image):
            got, want = load(gray_path), load(rgb_path)
            assert got.shape == want.shape and np.array_equal(got, want), (load.__name__, r["id"])
        mask = mask_as_loaded(small_build / "masks" / f"{r['id']}.png")
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.max() == 1.0  # targets read as 1, not 1/255
        assert np.array_equal(mask > 0, imageio.read_mask(small_build / "masks" / f"{r['id']}.png") > 0)
    # the originals (R=G=B) are byte copies, read by the loaders as before
    original = next(r for r in rows if r["kind"] == "original")
    assert Image.open(small_build / "images" / f"{original['id']}.png").mode == "RGB"


def test_one_bit_masks_would_be_read_wrong(tmp_path: Path) -> None:
    """Why masks are 8-bit: Pillow opens a 1-bit PNG as booleans, which the loaders scale to 1/255."""
    mask = np.zeros((8, 8), np.uint8)
    mask[3:5, 3:5] = 255
    eight, one = tmp_path / "eight.png", tmp_path / "one.png"
    eight.write_bytes(imageio.encode_mask(mask))
    ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_BILEVEL, 1])
    one.write_bytes(buf.tobytes())
    assert mask_as_loaded(eight).max() == 1.0
    assert mask_as_loaded(one).max() == pytest.approx(1 / 255)
    assert Image.open(eight).mode == "L"


@pytest.fixture(scope="module")
def unit_place(small_build: Path, tmp_path_factory) -> tuple[Place, list[str]]:
    tmp = tmp_path_factory.mktemp("units")
    src = small_build.parent / "demo"
    bank = tmp / "noise.h5"
    run_cli("sample-noise", "--src", src, "-o", bank, "-j", "1")
    return Place(Dataset(src.resolve(), SPLIT), tmp, str(bank)), Dataset(src, SPLIT).ids("train")


def _unit(place: Place, id_: str, channels: int, out: Path) -> list[dict]:
    with NoiseBank(place.bank) as bank:
        k = next(i for i, s in enumerate(bank.source_id) if s != id_)
        draw = NoiseDraw(k, bank.source_id[k], int(bank.grid[k][0]), int(bank.grid[k][1]))
    for folder in ("images", "masks"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    job = BuildJob(id_, f"{id_}_r0", new_row(split="train", source_id=id_, round=0), draw, 0.1, "resize", channels=channels, s=3)
    return run_job(job, Place(place.src, out, place.bank))


def test_channels_3_writes_the_same_pixels_as_r_equal_g_equal_b(unit_place, tmp_path: Path) -> None:
    place, ids = unit_place
    id_ = next(i for i in ids if imageio.read_mask(place.src.mask_path(i)).any())
    gray_rows, rgb_rows = _unit(place, id_, 1, tmp_path / "gray"), _unit(place, id_, 3, tmp_path / "rgb")
    assert [r["id"] for r in gray_rows] == [r["id"] for r in rgb_rows] and len(gray_rows) > 1
    for a, b in zip(gray_rows, rgb_rows):
        g, c = (Image.open(tmp_path / d / "images" / f"{a['id']}.png") for d in ("gray", "rgb"))
        assert (g.mode, c.mode) == ("L", "RGB")
        assert np.array_equal(np.dstack([np.asarray(g)] * 3), np.asarray(c))
        assert a["sha256_mask"] == b["sha256_mask"] and a["sha256_image"] != b["sha256_image"]
    with pytest.raises(ValueError, match="channels must be 1"):
        _unit(place, id_, 2, tmp_path / "bad")


def test_kept_sources_never_change_the_output(unit_place, tmp_path: Path) -> None:
    place, ids = unit_place
    id_ = ids[1]
    jobs.SOURCES.clear()
    cold = _unit(place, id_, 1, tmp_path / "cold")
    assert len(jobs.SOURCES) == 1  # decoded once, kept
    warm = _unit(place, id_, 1, tmp_path / "warm")
    assert cold == warm
    for r in cold:
        for folder in ("images", "masks"):
            a = (tmp_path / "cold" / folder / f"{r['id']}.png").read_bytes()
            assert a == (tmp_path / "warm" / folder / f"{r['id']}.png").read_bytes()
    kept = jobs.source_pixels(place.src, id_)
    assert not kept.gray.flags.writeable and not kept.mask.flags.writeable  # a unit cannot alter a kept image
    assert np.array_equal(kept.gray, method_gray(imageio.read_image(place.src.image_path(id_))))
    assert kept.targets == tuple(find_targets(imageio.read_mask(place.src.mask_path(id_))))


def test_the_cache_drops_changed_files_and_the_least_recently_used(tmp_path: Path) -> None:
    image, mask = tmp_path / "a.png", tmp_path / "m.png"
    image.write_bytes(b"1")
    mask.write_bytes(b"2")
    cache = SourceCache(limit=3 * 12)
    key = SourceCache.key(image, mask)
    sparse = np.zeros((2, 4), np.uint8)
    sparse[1, 2] = 7
    cache.put(key, np.arange(8, dtype=np.uint8).reshape(2, 4), sparse, [])
    assert cache.held == 8 + 4 + 1  # gray, one int32 index, one value
    kept = cache.get(key)
    assert np.array_equal(kept.mask, sparse) and np.array_equal(kept.gray, np.arange(8).reshape(2, 4))
    assert not kept.mask.flags.writeable and not kept.gray.flags.writeable
    image.write_bytes(b"12")  # another size: another key
    os.utime(mask, ns=(1, 1))
    assert SourceCache.key(image, mask) != key and cache.get(SourceCache.key(image, mask)) is None
    assert SourceCache.key(tmp_path / "missing.png", mask) is None
    cache = SourceCache(limit=3 * 8)
    cache.put(key, np.zeros((2, 4), np.uint8), np.zeros((2, 4), np.uint8), [])
    for n in range(1, 4):
        cache.get(key)  # the first entry stays in use
        cache.put((n,), np.full((2, 4), n, np.uint8), np.zeros((2, 4), np.uint8), [])
    assert cache.held <= cache.limit and len(cache) == 3
    assert cache.get(key) is not None and cache.get((1,)) is None  # least recently used went first
    dense = np.full((2, 4), 255, np.uint8)  # mostly target: kept as it is
    cache.put((5,), np.zeros((2, 4), np.uint8), dense, [])
    assert np.array_equal(cache.get((5,)).mask, dense)
    cache.put((9,), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), [])  # larger than the limit: not kept
    assert cache.get((9,)) is None
