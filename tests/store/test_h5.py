"""``build --format h5`` storage (docs/method.md section 6): one HDF5 file that reads back as the PNG build."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import pickle
import shutil
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from sirst_synth.errors import DatasetError
from sirst_synth.run import pack
from sirst_synth.run.pack import pack_dataset
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.h5 import format as h5format
from sirst_synth.store.h5 import writer as h5writer
from sirst_synth.store.h5.reader import H5Dataset
from sirst_synth.store.h5.stored import ImageFiles, stored_files
from sirst_synth.store.manifest import COLUMNS
from sirst_synth.store.reader import open_dataset

from conftest import demo_build, run_cli

SPLIT = "50_50"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """A 200-image build of the demo data (220 images with the test split)."""
    return demo_build(tmp_path_factory.mktemp("h5"), 200)


@pytest.fixture(scope="module")
def packed(build: Path) -> Path:
    out = build.parent / "build.h5"
    summary = pack_dataset(build, out, SPLIT, n_jobs=2)
    assert summary["images"] == 220 and summary["train"] == 200 and summary["test"] == 20
    assert summary["bytes"] == out.stat().st_size
    return out


def manifest_csv(rows) -> str:
    """CSV text as the build writes manifest.csv (header first, LF line ends)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def all_ids(ds: Dataset | H5Dataset) -> list[str]:
    return ds.ids("train") + ds.ids("test")


def assert_same_pixels(png: Dataset, h5: H5Dataset) -> int:
    """Every image and mask of ``png`` equals the one read from ``h5``; returns the count."""
    ids = all_ids(png)
    for id_ in ids:
        want, got = png.read_image(id_), h5.read_image(id_)
        assert (got.dtype, got.shape) == (want.dtype, want.shape), id_
        assert np.array_equal(got, want), id_
        want, got = png.read_mask(id_), h5.read_mask(id_)
        assert (got.dtype, got.shape) == (want.dtype, want.shape), id_
        assert np.array_equal(got, want), id_
    return len(ids)


def test_every_image_and_mask_reads_back_equal(build: Path, packed: Path) -> None:
    png, h5 = open_dataset(build), open_dataset(packed)
    assert assert_same_pixels(png, h5) == 220
    first = png.ids("train")[0]
    assert np.array_equal(h5.read_gray(first), png.read_gray(first)) and h5.read_gray(first).dtype == np.float32


def test_rgb_images_keep_their_three_channels(build: Path, tmp_path: Path) -> None:
    # NUDT-SIRST stores gray as RGB: the file must keep (H, W, 3), as the PNG reader returns it
    copy = tmp_path / "rgb"
    shutil.copytree(build, copy)
    from sirst_synth.store import imageio

    ds = Dataset(copy, SPLIT)
    rows = ds.manifest()
    for k, id_ in enumerate(all_ids(ds)[:10]):
        gray = ds.read_image(id_)
        assert gray.ndim == 2
        # 0-4: true colour; 5-9: gray stored as RGB (R=G=B, as NUDT-SIRST)
        data = imageio.encode_png(np.dstack([gray, gray, 255 - gray]) if k < 5 else np.dstack([gray] * 3))
        (copy / "images" / f"{id_}.png").write_bytes(data)
        rows[id_]["sha256_image"] = imageio.sha256(data)
    (copy / "manifest.csv").write_text(manifest_csv(rows.values()))
    pack_dataset(copy, tmp_path / "rgb.h5", SPLIT)
    h5 = open_dataset(tmp_path / "rgb.h5")
    assert assert_same_pixels(ds, h5) == 220
    ids = all_ids(ds)
    assert h5.read_image(ids[0]).shape == h5.read_image(ids[5]).shape == (256, 256, 3)
    assert h5.read_image(ids[10]).ndim == 2
    assert np.array_equal(h5.read_gray(ids[5]), ds.read_gray(ids[5]))
    with h5py.File(tmp_path / "rgb.h5") as f:  # gray is stored as one channel, whatever the PNG held
        layout = dict(zip(f["ids"].asstr()[()].tolist(), f["image_layout"][()].tolist()))
        assert f["images"][ids[0]].shape == (256, 3 * 256 + 1) and layout[ids[0]] == h5format.RGB
        assert f["images"][ids[5]].shape == (256, 257) and layout[ids[5]] == h5format.GRAY_AS_RGB
        assert f["images"][ids[10]].shape == (256, 257) and layout[ids[10]] == h5format.GRAY


def test_another_format_version_is_one_clear_line(packed: Path, tmp_path: Path) -> None:
    other = tmp_path / "v9.h5"
    shutil.copy(packed, other)
    with h5py.File(other, "r+") as f:
        f.attrs["format_version"] = h5format.FORMAT_VERSION + 1
    with pytest.raises(DatasetError, match=f"format version {h5format.FORMAT_VERSION + 1}; this sirst-synth reads"):
        open_dataset(other)


def test_the_builds_own_pngs_are_stored_without_decoding_and_others_are_refiltered(tmp_path: Path) -> None:
    from sirst_synth.store import imageio

    rng = np.random.default_rng(4)
    gray = rng.integers(0, 256, (6, 9), dtype=np.uint8)
    mask = np.zeros((6, 9), np.uint8)
    mask[2, 3] = 255
    ours, other = imageio.encode_image(gray), imageio.encode_png(gray, (cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB))
    assert h5format.png_scanlines(ours, h5format.UP)[:2] == (6, 9)
    assert h5format.png_scanlines(imageio.encode_mask(mask), h5format.NONE)[:2] == (6, 9)
    for not_taken in (other, imageio.encode_image(gray, 3), imageio.encode_mask(mask), ours[:-30], b"not a png"):
        assert h5format.png_scanlines(not_taken, h5format.UP) is None
    for data in (ours, other):  # either way the stored scanlines undo to the pixels
        (tmp_path / "i.png").write_bytes(data)
        (tmp_path / "m.png").write_bytes(imageio.encode_mask(mask))
        packed = stored_files(ImageFiles("x", tmp_path / "i.png", tmp_path / "m.png", "", ""))
        lines = np.frombuffer(zlib.decompress(packed.image_chunk), np.uint8).reshape(packed.image_shape)
        assert (lines[:, 0] == 2).all() and np.array_equal(h5format.up_unfilter(lines[:, 1:].copy()), gray)
    (tmp_path / "m.png").write_bytes(imageio.encode_mask(mask[:5]))
    with pytest.raises(DatasetError, match="differs from its image"):
        stored_files(ImageFiles("x", tmp_path / "i.png", tmp_path / "m.png", "", ""))


def test_up_filter_round_trips_any_size_and_layout() -> None:
    rng = np.random.default_rng(3)
    for shape in ((1, 1), (1, 7), (9, 1), (256, 256), (5, 6, 3), (300, 301)):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        stored = h5format.up_filter(pixels)
        assert np.array_equal(stored, np.diff(pixels, axis=0, prepend=np.zeros_like(pixels[:1])).astype(np.uint8))
        assert np.array_equal(h5format.up_unfilter(stored), pixels)
    big = rng.integers(0, 256, (3000, 3000), dtype=np.uint8)  # sums past 2**31: the 64-bit path
    assert np.array_equal(h5format.up_unfilter(h5format.up_filter(big)), big)


def test_ids_splits_manifest_and_info(build: Path, packed: Path) -> None:
    png, h5 = open_dataset(build), open_dataset(packed)
    assert h5.split == SPLIT
    assert h5.ids("train") == png.ids("train") and h5.ids("test") == png.ids("test")
    assert h5.manifest() == png.manifest()
    assert list(h5.manifest()) == list(png.manifest())  # manifest order
    assert h5.groups() == png.groups()
    assert h5.info() == json.loads((build / "sirst-synth.json").read_text())
    # the manifest columns rewrite manifest.csv byte for byte
    assert manifest_csv(h5.manifest().values()).encode() == (build / "manifest.csv").read_bytes()


def test_layout_is_plain_h5py(build: Path, packed: Path) -> None:
    with h5py.File(packed, "r") as f:
        assert f.attrs["format"] == h5format.FORMAT and f.attrs["format_version"] == 2
        assert f.attrs["split"] == SPLIT
        assert f.attrs["info"] == (build / "sirst-synth.json").read_text()
        ids = f["ids"].asstr()[()].tolist()
        assert ids == list(Dataset(build, SPLIT).manifest())
        assert f[f"splits/{SPLIT}/train"].asstr()[()].tolist() == Dataset(build, SPLIT).ids("train")
        assert sorted(f["manifest"]) == sorted(COLUMNS)
        assert sorted(f["images"]) == sorted(ids) == sorted(f["masks"])
        for group in ("images", "masks"):
            for id_ in ids:
                dset = f[group][id_]
                assert dset.dtype == np.uint8
                assert dset.chunks == dset.shape  # one chunk per image
                assert dset.compression == "gzip"
                assert dset.id.get_num_chunks() == 1
        # images: PNG scanlines, filter byte 2 (Up) then the Up-filtered row; masks: filter byte 0, the row
        png = Dataset(build, SPLIT)
        layout = dict(zip(ids, f["image_layout"][()].tolist()))
        assert f["image_layout"].dtype == np.uint8 and set(layout.values()) == {h5format.GRAY}  # demo data: gray
        for id_ in ids[:: max(1, len(ids) // 25)]:
            stored, pixels = f["images"][id_][()], png.read_image(id_)
            assert stored.shape == (pixels.shape[0], pixels.shape[1] + 1) and (stored[:, 0] == 2).all()
            assert np.array_equal(np.cumsum(stored[:, 1:], axis=0, dtype=np.uint8), pixels)
            mask = f["masks"][id_][()]
            assert (mask[:, 0] == 0).all() and np.array_equal(mask[:, 1:], png.read_mask(id_))


def test_packing_is_deterministic_for_any_worker_count(build: Path, packed: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.h5"
    shown: list[tuple[str, int]] = []

    def progress(label: str, length: int) -> contextlib.AbstractContextManager:
        shown.append((label, length))
        return contextlib.nullcontext(SimpleNamespace(update=lambda n: None))

    pack_dataset(build, again, SPLIT, progress=progress, n_jobs=1)
    assert again.read_bytes() == packed.read_bytes()
    assert shown == [("pack", len(Dataset(build, SPLIT).manifest() or {}))]


def test_open_dataset_dispatches_on_the_file(build: Path, packed: Path) -> None:
    assert type(open_dataset(build)) is Dataset
    h5 = open_dataset(packed)
    assert type(h5) is H5Dataset and h5.split == SPLIT and h5.root == packed
    assert open_dataset(packed, SPLIT, "trainval.txt").ids("train") == h5.ids("train")  # list names: folders only
    with pytest.raises(DatasetError, match="no split 'idx_427' in the file; it has: 50_50$"):
        open_dataset(packed, "idx_427")
    with pytest.raises(DatasetError, match="not used as a source"):
        open_dataset(packed, allow_hdf5=False)


def test_unknown_id_names_the_file_and_the_id(packed: Path) -> None:
    h5 = open_dataset(packed)
    with pytest.raises(DatasetError) as err:
        h5.read_image("nope")
    assert str(err.value) == f"{packed}: no image for id 'nope'"
    with pytest.raises(DatasetError, match="no mask for id 'nope'"):
        h5.read_mask("nope")


def test_bad_files_are_one_line_errors(packed: Path, tmp_path: Path) -> None:
    not_h5 = tmp_path / "x.png"
    not_h5.write_bytes(b"\x89PNG not really")
    other = tmp_path / "bank.h5"
    with h5py.File(other, "w") as f:
        f["pixels"] = np.zeros(3)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(packed.read_bytes()[:4096])
    cases = {not_h5: "is a file but not an HDF5 dataset", other: "an HDF5 file but not a sirst-synth dataset",
             cut: "not a readable HDF5 file"}
    for path, message in cases.items():
        with pytest.raises(DatasetError) as err:
            open_dataset(path)
        assert message in str(err.value) and str(path) in str(err.value)
        assert "\n" not in str(err.value)


def test_eval_command_reports_a_bad_file_as_one_line(packed: Path, tmp_path: Path) -> None:
    from sirst_synth.cli.train import eval_command

    result = CliRunner().invoke(eval_command, ["--pred", str(tmp_path), "--data", str(packed), "--split", "nope"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {packed}: no split 'nope' in the file; it has: 50_50"]


def test_a_failed_pack_leaves_no_output(build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "changed"
    shutil.copytree(build, copy)
    id_ = Dataset(copy, SPLIT).ids("train")[7]
    (copy / "images" / f"{id_}.png").write_bytes((copy / "images" / f"{Dataset(copy, SPLIT).ids('train')[8]}.png").read_bytes())
    out = tmp_path / "out.h5"
    with pytest.raises(DatasetError, match=f"{id_}.png: SHA-256 differs from manifest.csv"):
        pack_dataset(copy, out, SPLIT)
    assert list(tmp_path.glob("*.h5*")) == [] and list(tmp_path.glob(".*")) == []
    with pytest.raises(DatasetError, match=r"nowhere/out.h5: cannot write \(No such file or directory\)$"):
        pack_dataset(build, tmp_path / "nowhere" / "out.h5", SPLIT)
    (copy / "sirst-synth.json").unlink()
    with pytest.raises(DatasetError, match="sirst-synth.json: not found; only a complete build can be packed"):
        pack_dataset(copy, out, SPLIT)


def test_an_interrupted_pack_keeps_the_old_file(build: Path, packed: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous")
    calls = []
    real = h5writer._write_pixels

    def interrupt(*args):
        calls.append(1)
        if len(calls) == 50:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(h5writer, "_write_pixels", interrupt)
    with pytest.raises(KeyboardInterrupt):
        pack_dataset(build, out, SPLIT)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]  # no temporary file left


def _first_pixels(ds: H5Dataset) -> tuple[int, int]:
    id_ = ds.ids("train")[0]
    return int(ds.read_image(id_).sum()), int(ds.read_mask(id_).sum())


def test_reader_works_after_fork_and_pickle(packed: Path) -> None:
    h5 = open_dataset(packed)
    want = _first_pixels(h5)  # the parent's handle is open before the fork
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_first_pixels, [h5, h5]) == [want, want]
    assert _first_pixels(pickle.loads(pickle.dumps(h5))) == want


@pytest.mark.slow  # trains a model
def test_train_and_eval_read_the_file_as_the_folder(build: Path, packed: Path, tmp_path: Path) -> None:
    import torch

    from sirst_synth.cli.train import eval_command, train_command

    torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and stall on a busy machine)
    runner = CliRunner()
    summaries = {}
    for name, data, workers in (("h5", packed, "1"), ("png", build, "0")):  # a DataLoader worker: a forked reader
        run = tmp_path / name
        result = runner.invoke(train_command, ["--data", str(data), "--smoke", "--crop", "32", "--steps-per-epoch", "2",
                                               "--workers", workers, "--device", "cpu", "-o", str(run)])
        assert result.exit_code == 0, result.output
        summaries[name] = json.loads((run / "metrics.json").read_text())
    assert summaries["h5"]["last"]["loss"] == summaries["png"]["last"]["loss"]
    assert summaries["h5"]["normalisation"] == summaries["png"]["normalisation"]
    scores = {}
    for data in (packed, build):
        result = runner.invoke(eval_command, ["--checkpoint", str(tmp_path / "h5" / "last.pt"), "--data", str(data),
                                              "--device", "cpu", "--json"])
        assert result.exit_code == 0, result.output
        scores[data] = json.loads(result.stdout)
    assert scores[packed] == scores[build] and scores[packed]["images"] == 20


def test_nudt_build_packs_every_image(nudt_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "SIRST-5K.h5"
    summary = pack_dataset(nudt_build, out, SPLIT, n_jobs=2)
    assert (summary["images"], summary["train"], summary["test"]) == (6226, 5562, 664)
    png, h5 = open_dataset(nudt_build), open_dataset(out)
    assert h5.manifest() == png.manifest()
    assert assert_same_pixels(png, h5) == 6226
    assert h5.read_image(h5.ids("test")[0]).shape == (256, 256, 3)  # NUDT-SIRST: gray stored as RGB
    png_bytes = sum(p.stat().st_size for p in nudt_build.rglob("*") if p.is_file())
    assert summary["bytes"] <= png_bytes  # gray stored as one channel: no larger than the PNG folder


def test_build_format_h5_round_trips_to_the_png_build(build: Path, tmp_path: Path) -> None:
    """`build --format h5` end to end: the file reads back as the PNG build of the same parameters,
    the manifest matches, the staging folder is gone, and --resume on the finished file is a no-op."""
    out = tmp_path / "SIRST-5K.h5"
    args = ("build", "--src", build.parent / "demo", "-o", out, "--format", "h5", "--total", "200", "-j", "2")
    res = run_cli(*args)
    assert res.output.startswith("build: 200 train") and f"-> {out}" in res.output
    assert out.is_file() and not (tmp_path / "SIRST-5K.h5.building").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SIRST-5K.h5"]
    h5 = H5Dataset(out)
    png = Dataset(build, SPLIT)
    assert assert_same_pixels(png, h5) == 220
    assert h5.ids("train") == png.ids("train") and h5.ids("test") == png.ids("test")
    assert manifest_csv(h5.manifest().values()) == (build / "manifest.csv").read_text()
    res = run_cli(*args, "--resume")
    assert "(already complete)" in res.output
    res = run_cli(*args, "--seed", "5", "--resume", expect=1)
    assert res.output.startswith(f"error: {out}: --resume needs the parameters it was built with: seed was 0, now 5")
    res = run_cli(*args, expect=1)
    assert res.output == (f"error: {out}: holds a finished build; --resume with the same options checks it and has "
                          "nothing to do, --force builds it again\n")


def test_info_on_a_file_uses_the_files_own_split(build: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(build.parent / "demo", src)
    (src / "50_50").rename(src / "idx")
    out = tmp_path / "idx.h5"
    run_cli("build", "--src", src, "--split", "idx", "-o", out, "--format", "h5", "--total", "40", "-j", "1")
    report = json.loads(run_cli("info", out, "--json").stdout)
    assert report["split"] == "idx"


def test_generated_pngs_are_trusted_only_with_their_manifest_hash(tmp_path: Path) -> None:
    """An image the build wrote (kind displaced/negative, hash equal to the manifest's) is stored
    without inflating every row; any other PNG with a row of another filter is re-filtered."""
    from sirst_synth.store import imageio, pngbands

    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (20, 7), dtype=np.uint8)
    mask = np.zeros((20, 7), np.uint8)
    lines = np.empty((20, 8), np.uint8)
    lines[:, 0], lines[:, 1:] = 0, gray
    lines[0, 0] = h5format.UP  # the first row claims Up (row 0 is the same either way), the rest use none
    mixed = pngbands.BandedPNG(7, 20, pngbands.GRAY, h5format.UP, 20, lines, (pngbands._deflate(lines),)).png()
    assert np.array_equal(imageio.decode_image(mixed), gray)
    assert h5format.png_scanlines(mixed, h5format.UP) is None
    assert h5format.png_scanlines(mixed, h5format.UP, every_row=False) is not None
    (tmp_path / "i.png").write_bytes(mixed)
    (tmp_path / "m.png").write_bytes(imageio.encode_mask(mask))
    packed = stored_files(ImageFiles("x", tmp_path / "i.png", tmp_path / "m.png", "", ""))
    stored = np.frombuffer(zlib.decompress(packed.image_chunk), np.uint8).reshape(packed.image_shape)
    assert np.array_equal(h5format.up_unfilter(stored[:, 1:].copy()), gray)
    ours = imageio.encode_image(gray)
    (tmp_path / "i.png").write_bytes(ours)
    job = ImageFiles("x", tmp_path / "i.png", tmp_path / "m.png", imageio.sha256(ours),
                        imageio.sha256(imageio.encode_mask(mask)), generated=True)
    assert stored_files(job).image_chunk == h5format.png_scanlines(ours, h5format.UP)[2]
    # a mask whose rows mix filters (first row unfiltered, the rest Up): a generated image's mask is
    # checked row by row, and stored as its pixels
    target = np.zeros((20, 7), np.uint8)
    target[5:9, 2:4] = 255
    mask_lines = np.empty((20, 8), np.uint8)
    mask_lines[:, 0], mask_lines[0, 1:] = h5format.UP, target[0]
    mask_lines[0, 0] = h5format.NONE
    mask_lines[1:, 1:] = target[1:] - target[:-1]
    old_mask = pngbands.BandedPNG(7, 20, pngbands.GRAY, 0, 20, mask_lines, (pngbands._deflate(mask_lines),)).png()
    assert np.array_equal(imageio.decode_image(old_mask), target)
    (tmp_path / "m.png").write_bytes(old_mask)
    job = ImageFiles("x", tmp_path / "i.png", tmp_path / "m.png", imageio.sha256(ours), imageio.sha256(old_mask),
                        generated=True)
    packed = stored_files(job)
    assert np.array_equal(np.frombuffer(zlib.decompress(packed.mask_chunk), np.uint8).reshape(packed.mask_shape)[:, 1:],
                          target)
    (tmp_path / "i.png").write_bytes(mixed)  # changed after the build: refused, never trusted
    with pytest.raises(DatasetError, match="SHA-256 differs"):
        stored_files(job)


def test_pack_order_spreads_the_decoding_jobs_and_keeps_each_kinds_order() -> None:
    jobs = [ImageFiles(f"o{i}", Path("i"), Path("m"), "", "") for i in range(3)]
    jobs += [ImageFiles(f"g{i}", Path("i"), Path("m"), "", "", generated=True) for i in range(9)]
    jobs += [ImageFiles("t0", Path("i"), Path("m"), "", "")]
    order = pack._interleaved(jobs)
    assert sorted(order, key=jobs.index) == jobs
    assert [job.id for job in order] == ["o0", "g0", "g1", "o1", "g2", "g3", "o2", "g4", "g5", "t0", "g6", "g7", "g8"]
