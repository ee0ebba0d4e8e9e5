"""sirst_synth.run.jobs: the worker code that copies, displaces and negates one image."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sirst_synth.method.noise import NoiseRegion
from sirst_synth.run.jobs import CopyJob, NoiseDraw, Place, run_job
from sirst_synth.run.output import FolderOutput
from sirst_synth.run.sinks import UNIT_FILES
from sirst_synth.run.stages.build import BuildJob
from sirst_synth.run.stages.displace import DisplaceJob
from sirst_synth.run.stages.negaug import NegateJob
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.h5.stored import ImageFiles, stored_files
from sirst_synth.store.h5.units import unit_images
from sirst_synth.store.manifest import new_row, original_row
from sirst_synth.store.noisebank import NoiseBankWriter


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def place(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for root in (src, out):
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(20, 90, (32, 32)).astype(np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    # two targets whose 3x3 windows differ under every rotation, so each gives three negatives
    image[4:7, 4:7] = np.arange(200, 245, 5, dtype=np.uint8).reshape(3, 3)
    mask[4:7, 4:7] = 255
    image[20:23, 24:27] = np.arange(150, 240, 10, dtype=np.uint8).reshape(3, 3)
    mask[20:23, 24:27] = 255
    # written by Pillow with a text chunk, so any re-encoding would change the bytes
    text = PngInfo()
    text.add_text("Comment", "source file")
    Image.fromarray(image).save(src / "images" / "a.png", pnginfo=text)
    Image.fromarray(mask).save(src / "masks" / "a.png", pnginfo=text)
    bank = tmp_path / "noise.h5"
    writer = NoiseBankWriter(bank, {})
    writer.add("a", [NoiseRegion(1, 1, (8, 8, 16, 16), 4.0, 50.0)], [rng.uniform(40, 60, (8, 8)).astype(np.float32)])
    writer.close()
    return Place(Dataset(src), out, str(bank))


def unit(s=None, noise=True):
    """The job of a stage: build (displace + negatives), displace only, or negatives only."""
    row = new_row(split="train", source_id="a", round=0)
    draw = NoiseDraw(0, "a", 1, 1)
    if not noise:
        return NegateJob("a", "a", row, s)
    return BuildJob("a", "a_r0", row, draw, 0.5, "resize", s=s) if s else DisplaceJob("a", "a_r0", row, draw, 0.5, "resize")


def test_a_copy_copies_bytes_unchanged_and_returns_their_hashes(place):
    (rows,) = [run_job(CopyJob("a", original_row("a", "train")), place)]
    src, out = place.src.root, place.out
    assert (out / "images" / "a.png").read_bytes() == (src / "images" / "a.png").read_bytes()
    assert (out / "masks" / "a.png").read_bytes() == (src / "masks" / "a.png").read_bytes()
    assert rows == [{**original_row("a", "train"), "sha256_image": sha(src / "images" / "a.png"),
                     "sha256_mask": sha(src / "masks" / "a.png")}]


def test_a_copy_through_unit_files_is_the_row_of_a_copy_without_the_files(place):
    """``build --format h5`` keeps the originals in its file: their rows, from the scan's hashes,
    are those copying gives, and nothing is written."""
    src = place.src.root
    job = CopyJob("a", original_row("a", "train"), (4, 1.0, 2.0), sha(src / "images" / "a.png"),
                  sha(src / "masks" / "a.png"))
    stored = dataclasses.replace(place, sink=UNIT_FILES)
    assert run_job(job, stored) == run_job(CopyJob("a", original_row("a", "train"), (4, 1.0, 2.0)), place)
    (place.out / "images" / "a.png").unlink()
    run_job(job, stored)
    assert not (place.out / "images" / "a.png").exists()


def test_a_unit_through_unit_files_gives_the_rows_and_chunks_of_its_png_files(place):
    """The two sinks of a build unit agree: the same manifest rows, and the unit file holds the
    chunks that storing the PNG files gives (what the HDF5 file receives either way)."""
    pngs = run_job(unit(s=3), place)
    stored_place = dataclasses.replace(place, out=place.out.parent / "stored", sink=UNIT_FILES)
    stored_place.out.mkdir()
    assert run_job(unit(s=3), stored_place) == pngs
    assert not (stored_place.out / "images").exists()
    from_files = [stored_files(ImageFiles(r["id"], place.out / "images" / f"{r['id']}.png",
                                          place.out / "masks" / f"{r['id']}.png", r["sha256_image"], r["sha256_mask"]))
                  for r in pngs]
    assert unit_images(stored_place.out, pngs) == from_files


def test_a_unit_without_noise_writes_only_the_negatives_of_each_target(place):
    rows = run_job(unit(s=3, noise=False), place)
    ids = [r["id"] for r in rows]
    assert ids == [f"a_t{t}_k{k}" for t in (1, 2) for k in (1, 2, 3)]
    assert sorted(p.stem for p in (place.out / "images").iterdir()) == sorted(ids)
    assert sorted(p.stem for p in (place.out / "masks").iterdir()) == sorted(ids)
    assert all(r["kind"] == "negative" and r["group"] == "a" and r["s"] == "3" for r in rows)
    assert [r["target"] for r in rows] == ["1"] * 3 + ["2"] * 3


def test_a_negative_row_holds_the_hashes_of_its_files(place):
    for r in run_job(unit(s=3, noise=False), place):
        assert r["sha256_image"] == sha(place.out / "images" / f"{r['id']}.png")
        assert r["sha256_mask"] == sha(place.out / "masks" / f"{r['id']}.png")


def test_a_unit_with_noise_writes_the_displaced_image_first(place):
    rows = run_job(unit(s=3), place)
    first = rows[0]
    assert (first["id"], first["kind"], first["group"]) == ("a_r0", "displaced", "a_r0")
    assert (first["noise_source_id"], first["noise_row"], first["noise_col"], first["alpha"]) == ("a", "1", "1", "0.5")
    assert [r["id"] for r in rows[1:]] == [f"a_r0_t{t}_k{k}" for t in (1, 2) for k in (1, 2, 3)]
    assert all(r["group"] == "a_r0" and r["noise_source_id"] == "a" for r in rows[1:])


def test_the_displaced_image_keeps_the_source_mask_pixels_in_an_8_bit_gray_mask(place):
    run_job(unit(), place)
    assert np.array_equal(imageio.read_mask(place.out / "masks" / "a_r0.png"), place.src.read_mask("a"))
    assert imageio.decode_image((place.out / "masks" / "a_r0.png").read_bytes()).ndim == 2
    assert not np.array_equal(imageio.read_image(place.out / "images" / "a_r0.png"), place.src.read_image("a"))


def test_a_unit_with_noise_and_no_s_writes_only_the_displaced_image(place):
    assert [r["id"] for r in run_job(unit(s=None), place)] == ["a_r0"]
    assert [p.name for p in (place.out / "images").iterdir()] == ["a_r0.png"]


def test_a_unit_writes_the_same_files_every_time(place):
    first = run_job(unit(s=3), place)
    assert run_job(unit(s=3), place) == first


def test_a_folder_output_keeps_the_first_images_of_a_cut_unit_and_deletes_the_rest(place):
    rows = run_job(unit(s=3), place)
    FolderOutput(place.out).unit_done(place.out, [*rows, {"id": "never_written"}], 2)
    kept = [r["id"] for r in rows[:2]]
    assert sorted(p.stem for p in (place.out / "images").iterdir()) == sorted(kept)
    assert sorted(p.stem for p in (place.out / "masks").iterdir()) == sorted(kept)


@pytest.mark.parametrize("channels", [1, 3])
def test_negative_files_are_the_fresh_encoding_of_the_methods_pixels(tmp_path, channels):
    """A negative re-deflates only its window's bands, and reuses its displaced image's mask bytes
    when the rotation leaves the mask unchanged: its files are still exactly ``encode_image`` /
    ``encode_mask`` of the pixels docs/method.md section 4 gives, and its gray sums are its own."""
    from sirst_synth.method.negatives import negatives
    from sirst_synth.method.targets import find_targets
    from sirst_synth.store.fingerprint import gray_sums
    from sirst_synth.store.manifest import SUMS

    src, out = tmp_path / "src", tmp_path / "out"
    for root in (src, out):
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
    rng = np.random.default_rng(7)
    image = rng.integers(20, 90, (40, 24)).astype(np.uint8)
    mask = np.zeros((40, 24), np.uint8)
    mask[5:8, 5:8] = 255        # fills its window: every rotation keeps the mask
    mask[15:17, 16] = 255       # an L: rotations move it (window rows 15-17 cross the band edge at 16)
    mask[16, 17] = 255
    image[mask > 0] = 230
    image[5:8, 5:8] = np.arange(200, 245, 5, dtype=np.uint8).reshape(3, 3)
    image[15, 16] = 250
    Image.fromarray(image).save(src / "images" / "a.png")
    Image.fromarray(mask).save(src / "masks" / "a.png")
    place = Place(Dataset(src), out)
    rows = run_job(NegateJob("a", "a", new_row(split="train", source_id="a", round=0), 3, channels), place)
    expected = list(negatives(image, mask, find_targets(mask), 3))
    assert [r["id"] for r in rows] == [f"a_t{n.target.label}_k{n.k}" for n in expected]
    reused = changed = 0
    for row, neg in zip(rows, expected):
        assert (out / "images" / f"{row['id']}.png").read_bytes() == imageio.encode_image(neg.image, channels)
        assert (out / "masks" / f"{row['id']}.png").read_bytes() == imageio.encode_mask(neg.mask)
        assert row[SUMS] == gray_sums(neg.image)
        same = np.array_equal(neg.mask, mask)
        reused, changed = reused + same, changed + (not same)
    assert reused and changed
