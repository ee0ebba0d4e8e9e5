"""``export`` reads each file once, decodes only what it must (each distinct mask, and for the
statistics each image but a build's negatives), gives the statistics the whole-dataset functions
give, and ends with one summary line on stderr (off with ``-q``)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from sirst_synth.interop import filescan
from sirst_synth.progress import silent
from sirst_synth.store import imageio
from sirst_synth.store.fingerprint import img_norm_cfg, per_image_norm_cfg, split_fingerprint
from sirst_synth.store.reader import open_dataset

from conftest import run_cli
from support import manifest


@pytest.fixture(scope="module")
def built(demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-once") / "SIRST-5K"
    run_cli("build", "--src", demo, "--total", "80", "-j", "1", "-o", out)
    return out


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The names of every decode (``image ...``, ``mask ...``) while the test runs."""
    seen: list[str] = []
    decode = imageio.decode_image

    def counting(data, name="image"):
        seen.append(name)
        return decode(data, name)

    monkeypatch.setattr(imageio, "decode_image", counting)
    return seen


def is_mask(name: str) -> bool:
    return name == "mask" or "/masks/" in name


def record(out: Path) -> dict:
    return json.loads((out / "sirst-synth-export.json").read_text())


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_export_of_a_build_decodes_each_image_once_and_no_negative(built, tmp_path, decodes, jobs):
    """Decoded: each original, test and displaced image once (a negative's statistics are its
    group's), and each distinct mask of an original once (the build's own masks hold its values)."""
    rows = manifest(built)
    res = run_cli("export", built, "--to", "basicirstd", "-o", tmp_path / "datasets", "-j", jobs)
    images = [n for n in decodes if not is_mask(n)]
    assert len(images) == sum(r["kind"] != "negative" for r in rows)  # originals, displaced, test
    assert len(decodes) - len(images) == len({r["sha256_mask"] for r in rows if r["kind"] == "original"})
    ds = open_dataset(built)
    got = record(tmp_path / "datasets" / "SIRST-5K")
    assert got["img_norm_cfg"] == img_norm_cfg(ds) == {k: v for k, v in json.loads(
        (built / "sirst-synth.json").read_text())["img_norm_cfg"].items() if k != "part"}
    assert got["img_norm_cfg_per_image_train_test"] == per_image_norm_cfg(ds)
    assert got["fingerprint"] == split_fingerprint(ds)
    assert got["files"] == {"linked": 2 * len(rows), "copied": 0, "masks_rewritten": []}
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and lines[1].endswith(f"(--img_norm_cfg_mean {got['img_norm_cfg_per_image_train_test']['mean']:.4f} "
                                                 f"--img_norm_cfg_std {got['img_norm_cfg_per_image_train_test']['std']:.4f})")
    assert re.fullmatch(rf"export basicirstd: 80 train / 20 test ids, {2 * len(rows)} files linked, 0 copied, "
                        rf"0 masks rewritten -> {re.escape(str(tmp_path / 'datasets' / 'SIRST-5K'))} in \d+\.\d s\n",
                        res.stderr), res.stderr


def test_files_changed_after_the_build_are_decoded(built, tmp_path, decodes):
    """A negative's statistics are its group's, and a generated mask's verdict its original's, only
    while the files are as the build wrote them: changed ones are decoded, a soft mask rewritten."""
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    rows = manifest(copy)
    negative = next(r for r in rows if r["kind"] == "negative")
    original = next(r for r in rows if r["kind"] == "original")
    displaced = next(r for r in rows if r["kind"] == "displaced" and r["source_id"] != original["source_id"])
    shutil.copyfile(copy / "images" / f"{original['id']}.png", copy / "images" / f"{negative['id']}.png")
    soft = imageio.read_mask(copy / "masks" / f"{displaced['id']}.png") // 2
    (copy / "masks" / f"{displaced['id']}.png").write_bytes(imageio.encode_png(soft))
    decodes.clear()
    run_cli("export", copy, "--to", "points", "-o", tmp_path / "out", "-j", "1")
    assert sum(not is_mask(n) for n in decodes) == sum(r["kind"] != "negative" for r in rows) + 1
    got = record(tmp_path / "out" / "copy")
    ds = open_dataset(copy)
    assert got["img_norm_cfg"] == img_norm_cfg(ds) and got["img_norm_cfg_per_image_train_test"] == per_image_norm_cfg(ds)
    assert got["files"]["masks_rewritten"] == [displaced["id"]]


def test_a_plain_source_decodes_each_file_once_and_quiet_keeps_the_statistics(demo, tmp_path, decodes):
    res = run_cli("-q", "export", demo, "--to", "basicirstd", "-o", tmp_path / "datasets", "-j", "1")
    listed = 40
    assert len([n for n in decodes if not is_mask(n)]) == listed
    assert res.stderr == "" and len(res.stdout.splitlines()) == 2
    ds = open_dataset(demo)
    got = record(tmp_path / "datasets" / "demo")
    assert got["img_norm_cfg"] == img_norm_cfg(ds) and got["img_norm_cfg_per_image_train_test"] == per_image_norm_cfg(ds)


def test_a_mask_to_rewrite_is_found_once_per_distinct_file(demo, tmp_path, decodes):
    """Two ids with the same soft mask: checked once, both rewritten as 0/255 (each read again to be written)."""
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    first, second = (src / "50_50" / "train.txt").read_text().split()[:2]
    soft = imageio.read_mask(src / "masks" / f"{first}.png") // 2  # 127 where the targets are
    for id_ in (first, second):
        (src / "masks" / f"{id_}.png").write_bytes(imageio.encode_png(soft))
    shutil.copyfile(src / "images" / f"{first}.png", src / "images" / f"{second}.png")
    decodes.clear()
    run_cli("export", src, "--to", "mshnet", "-o", tmp_path / "out", "-j", "2")
    assert sum(is_mask(n) for n in decodes) == len({(src / "masks" / f"{i}.png").read_bytes()
                                                               for i in open_dataset(src).ids("train")
                                                               + open_dataset(src).ids("test")}) + 2
    assert record(tmp_path / "out")["files"]["masks_rewritten"] == sorted([first, second])
    assert set(imageio.read_mask(tmp_path / "out" / "masks" / f"{second}.png").ravel()) <= {0, 255}


def test_file_scan_chunks_keep_the_order(tmp_path):
    paths = []
    for k in range(3 * filescan.CHUNK + 5):
        path = tmp_path / f"{k}.bin"
        path.write_bytes(str(k).encode())
        paths.append(str(path))
    found = filescan.scan_files(paths, [], False, False, 2, silent)
    assert [found.sha[p] for p in paths] == [imageio.sha256(str(k).encode()) for k in range(len(paths))]
