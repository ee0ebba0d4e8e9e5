"""The SIRST-5K build of NUDT-SIRST (docs/method.md sections 3-7), checked against independent computations."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, tree_digest
from support import centroids, expected_displaced, expected_gray_displaced, ids, manifest, read

SPLIT = "50_50"


@pytest.fixture(scope="module")
def rows(nudt_build: Path) -> list[dict[str, str]]:
    return manifest(nudt_build)


@pytest.fixture(scope="module")
def train_rows(rows):
    return [r for r in rows if r["split"] == "train"]


def test_train_list_has_5562_ids_originals_first(nudt_build, nudt, train_rows):
    train = ids(nudt_build, SPLIT, "train")
    src_train = ids(nudt, SPLIT, "train")
    assert len(train) == 5562 and len(set(train)) == 5562
    assert train[:663] == src_train
    assert [r["id"] for r in train_rows] == train
    for id_ in src_train:
        for folder in ("images", "masks"):
            assert (nudt_build / folder / f"{id_}.png").read_bytes() == (nudt / folder / f"{id_}.png").read_bytes()


def test_round0_is_whole_and_round1_supplies_the_rest(nudt_build, train_rows):
    generated = train_rows[663:]
    assert len(generated) == 4899
    rounds = [int(r["round"]) for r in generated]
    assert rounds == sorted(rounds) and set(rounds) == {0, 1}
    r0 = [r for r in generated if r["round"] == "0"]
    displaced0 = [r for r in r0 if r["kind"] == "displaced"]
    assert len(displaced0) == 663
    assert {r["source_id"] for r in displaced0} == set(ids(nudt_build, SPLIT, "train")[:663])
    # Every distinct negative of round 0: 3 per target less the rotations that repeat a window.
    expected, rotations = 0, 0
    for d in displaced0:
        image, mask = read(nudt_build / "images" / f"{d['id']}.png"), read(nudt_build / "masks" / f"{d['id']}.png")
        h, w = mask.shape
        for cy, cx in centroids(mask):
            y0, x0 = min(max(cy - 1, 0), h - 3), min(max(cx - 1, 0), w - 3)
            seen = [image[y0:y0 + 3, x0:x0 + 3]]
            for k in (1, 2, 3):
                rotations += 1
                rot = np.rot90(seen[0], k)
                if not any(np.array_equal(rot, s) for s in seen):
                    expected += 1
                    seen.append(rot)
    assert rotations == 3 * 918
    assert sum(r["kind"] == "negative" for r in r0) == expected
    assert 2754 - 100 < expected < 2754
    # Round 1 is a prefix of whole units (displaced then its negatives), the last one cut.
    r1 = [r for r in generated if r["round"] == "1"]
    assert r1[0]["kind"] == "displaced"
    assert all(r["group"] == f"{r['source_id']}_r1" for r in r1)


def test_kinds_and_ids_follow_the_naming_scheme(train_rows):
    for r in train_rows[663:]:
        if r["kind"] == "displaced":
            assert r["id"] == r["group"] == f"{r['source_id']}_r{r['round']}"
        else:
            assert r["kind"] == "negative"
            assert r["id"] == f"{r['group']}_t{r['target']}_k{r['k']}" and r["s"] == "3"


def test_test_split_is_copied_byte_identical(nudt_build, nudt, rows):
    test = ids(nudt_build, SPLIT, "test")
    assert test == ids(nudt, SPLIT, "test") and len(test) == 664
    assert [r["id"] for r in rows if r["split"] == "test"] == test
    for id_ in test:
        for folder in ("images", "masks"):
            assert (nudt_build / folder / f"{id_}.png").read_bytes() == (nudt / folder / f"{id_}.png").read_bytes()


def test_no_two_output_images_are_byte_identical(nudt_build, rows):
    files = sorted((nudt_build / "images").iterdir())
    assert len(files) == 5562 + 664 == len(rows)
    digests = Counter(r["sha256_image"] for r in rows)
    assert max(digests.values()) == 1
    import hashlib
    for f, r in zip(files, sorted(rows, key=lambda r: r["id"] + ".png")):
        assert f.name == r["id"] + ".png"
        assert hashlib.sha256(f.read_bytes()).hexdigest() == r["sha256_image"]


def test_no_test_image_is_a_source_or_a_noise_source(nudt_build, rows, nudt, tmp_path):
    test = set(ids(nudt, SPLIT, "test"))
    for r in rows:
        if r["kind"] != "original":
            assert r["source_id"] not in test and r["noise_source_id"] not in test
            assert r["noise_source_id"] != r["source_id"]
    bank = tmp_path / "noise.h5"
    run_cli("sample-noise", "--src", nudt, "-o", bank, "-j", "2")
    import h5py
    with h5py.File(bank) as f:
        sources = {s.decode() for s in f["source_id"][()]}
        assert f["box"].shape[0] == len(f["source_id"]) > 0
    assert sources <= set(ids(nudt, SPLIT, "train")) and not sources & test


def test_each_displaced_image_follows_section_3(nudt_build, nudt, train_rows):
    displaced = [r for r in train_rows if r["kind"] == "displaced"]
    assert len(displaced) > 663
    params = json.loads((nudt_build / "sirst-synth.json").read_text())["parameters"]
    for r in displaced:
        cell = read(nudt / "images" / f"{r['noise_source_id']}.png")[..., 0].astype(np.float64)
        row, col = int(r["noise_row"]), int(r["noise_col"])
        assert 0 < cell[row * 32:(row + 1) * 32, col * 32:(col + 1) * 32].var() < params["max_var"]
        expected = expected_gray_displaced(nudt, r, params["grid"])
        written = read(nudt_build / "images" / f"{r['id']}.png")
        assert written.shape == expected.shape, r["id"]  # what the method computes: one gray channel
        assert np.array_equal(written, expected), r["id"]
        source = read(nudt / "images" / f"{r['source_id']}.png")
        if (source == source[..., :1]).all():  # R=G=B (all but 7 NUDT-SIRST images): the RGB formula's channel
            assert np.array_equal(written, expected_displaced(nudt, r, params["grid"])[..., 0]), r["id"]
        assert np.array_equal(read(nudt_build / "masks" / f"{r['id']}.png"), read(nudt / "masks" / f"{r['source_id']}.png"))


def test_generated_images_are_8_bit_gray_and_originals_keep_their_bytes(nudt_build, nudt, rows):
    from PIL import Image

    kinds = Counter()
    for r in rows:
        with Image.open(nudt_build / "images" / f"{r['id']}.png") as im, \
                Image.open(nudt_build / "masks" / f"{r['id']}.png") as mask:
            kinds[r["kind"], im.mode, mask.mode] += 1
    assert kinds == {("original", "RGB", "L"): 663 + 664, ("displaced", "L", "L"): sum(r["kind"] == "displaced" for r in rows),
                     ("negative", "L", "L"): sum(r["kind"] == "negative" for r in rows)}


def test_each_negative_is_one_rotated_window_of_its_parent(nudt_build, train_rows):
    negatives = [r for r in train_rows if r["kind"] == "negative"]
    assert len(negatives) > 3000
    cache: dict[str, tuple] = {}
    for r in negatives:
        parent = r["group"]
        if parent not in cache:
            cache.clear()
            cache[parent] = (read(nudt_build / "images" / f"{parent}.png"), read(nudt_build / "masks" / f"{parent}.png"))
        p_img, p_mask = cache[parent]
        n_img, n_mask = read(nudt_build / "images" / f"{r['id']}.png"), read(nudt_build / "masks" / f"{r['id']}.png")
        s, k, cy, cx = int(r["s"]), int(r["k"]), int(r["cy"]), int(r["cx"])
        assert (cy, cx) == centroids(p_mask)[int(r["target"]) - 1]
        h, w = p_mask.shape
        y0, x0 = min(max(cy - s // 2, 0), h - s), min(max(cx - s // 2, 0), w - s)
        for before, after in ((p_img, n_img), (p_mask, n_mask)):
            outside = np.ones((h, w), bool)
            outside[y0:y0 + s, x0:x0 + s] = False
            assert np.array_equal(before[outside], after[outside]), r["id"]
            assert np.array_equal(after[y0:y0 + s, x0:x0 + s], np.rot90(before[y0:y0 + s, x0:x0 + s], k)), r["id"]
        assert not np.array_equal(n_img, p_img)


def test_one_and_two_workers_give_identical_files_and_manifest(nudt_build, nudt, nudt_digest, tmp_path):
    out = tmp_path / "j1"
    run_cli("build", "--src", nudt, "--alpha", "0.1", "--s", "3", "-o", out, "-j", "1")
    assert tree_digest(nudt) == nudt_digest
    for folder in ("images", "masks"):
        a, b = sorted(p.name for p in (out / folder).iterdir()), sorted(p.name for p in (nudt_build / folder).iterdir())
        assert a == b
        for name in a:
            assert (out / folder / name).read_bytes() == (nudt_build / folder / name).read_bytes(), name
    for name in ("manifest.csv", f"{SPLIT}/train.txt", f"{SPLIT}/test.txt"):
        assert (out / name).read_bytes() == (nudt_build / name).read_bytes()
    assert (out / "sirst-synth.json").read_bytes() == (nudt_build / "sirst-synth.json").read_bytes()


def test_build_records_parameters_counts_and_fingerprint(nudt_build):
    info = json.loads((nudt_build / "sirst-synth.json").read_text())
    assert info["parameters"]["alpha"] == 0.1 and info["parameters"]["s"] == 3 and info["parameters"]["total"] == 5562
    assert info["counts"]["train"] == 5562 and info["counts"]["test"] == 664 and info["counts"]["original"] == 663
    assert info["counts"]["displaced"] + info["counts"]["negative"] == 4899
    assert len(info["source"]["fingerprint"]) == 64 and info["source"]["skipped_invalid"] == []
