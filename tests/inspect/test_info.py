"""info: counts of a source or built dataset equal the split files, the masks and the manifest."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli
from support import ids, manifest, read


def _info(*args) -> dict:
    return json.loads(run_cli("info", *args, "--json").stdout)


@pytest.fixture(scope="module")
def built(demo: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("info") / "demo-5k"
    run_cli("build", "--src", demo, "-o", out, "--total", "250", "-j", "1")
    return out


def test_nudt_counts_equal_the_split_files(nudt):
    info = _info(nudt, "-j", "2")
    train, test = ids(nudt, "50_50", "train"), ids(nudt, "50_50", "test")
    assert (len(train), len(test)) == (663, 664)
    assert info["kind"] == "source" and info["split"] == "50_50"
    assert info["images"] == {"train": 663, "test": 664, "total": 1327}
    assert info["parts"]["train"]["images"] == 663 and info["parts"]["test"]["images"] == 664
    assert info["parts"]["train"]["targets"] == 918                      # docs/method.md section 5
    assert info["parts"]["train"]["sizes"] == {"256x256": 663}
    per_image = info["parts"]["train"]["targets_per_image"]
    assert sum(per_image.values()) == 663 and sum(int(k) * v for k, v in per_image.items()) == 918
    assert sum(info["parts"]["train"]["modes"].values()) == 663
    assert info["problems"] == [] and "manifest" not in info


def test_counts_equal_the_masks_computed_independently(demo):
    info = _info(demo, "-j", "1")
    for part in ("train", "test"):
        areas, per_image, modes = [], Counter(), Counter()
        for id_ in ids(demo, "50_50", part):
            mask = read(demo / "masks" / f"{id_}.png")
            n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
            areas += list(stats[1:, cv2.CC_STAT_AREA])
            per_image[str(n - 1)] += 1
            modes["gray" if read(demo / "images" / f"{id_}.png").ndim == 2 else "RGB"] += 1
        p = info["parts"][part]
        assert p["targets"] == len(areas)
        assert p["targets_per_image"] == dict(sorted(per_image.items(), key=lambda kv: int(kv[0])))
        assert p["target_pixels"] == {"min": min(areas), "median": float(np.median(areas)), "max": max(areas)}
        assert p["modes"] == dict(modes)


def test_built_dataset_counts_equal_its_manifest_and_record(built):
    info = _info(built, "-j", "2")
    rows = manifest(built)
    record = json.loads((built / "sirst-synth.json").read_text())
    train, test = ids(built, "50_50", "train"), ids(built, "50_50", "test")
    assert info["kind"] == "built"
    assert info["images"] == {"train": len(train), "test": len(test), "total": len(train) + len(test)} \
        == {"train": 250, "test": 20, "total": 270}
    m = info["manifest"]
    assert m["rows"] == len(rows) == 270 and m["listed_without_row"] == m["rows_not_listed"] == 0
    kinds = Counter((r["split"], r["kind"]) for r in rows)
    assert m["kinds"] == {"test": {"original": kinds["test", "original"]},
                          "train": {k: kinds["train", k] for k in ("displaced", "negative", "original")}}
    assert {k: m["kinds"]["train"][k] for k in ("original", "displaced", "negative")} == \
        {k: record["counts"][k] for k in ("original", "displaced", "negative")}
    rounds = Counter((r["round"], r["kind"]) for r in rows if r["round"])
    assert m["rounds"] == {r: {k: rounds[r, k] for k in ("displaced", "negative") if rounds[r, k]}
                           for r in sorted({r for r, _ in rounds})}
    assert set(m["rounds"]) == {"0", "1"}                                 # the demo build needs a second round
    assert info["build"]["parameters"] == record["parameters"]
    text = run_cli("info", built, "-j", "1").output
    assert "built dataset" in text and "round 1:" in text and "alpha=0.1" in text


def test_split_options_and_problems(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    (src / "idx").mkdir()
    train = ids(demo, "50_50", "train")
    (src / "idx" / "trainval.txt").write_text("\n".join(train[:5]) + "\n")
    (src / "idx" / "test.txt").write_text("\n".join(ids(demo, "50_50", "test")[:3]))
    r = run_cli("info", src, "--split", "idx", "--json", expect=1)
    assert r.output.strip().splitlines() == [f"error: {src / 'idx' / 'train.txt'}: split file not found; "
                                             "split lists found: 50_50/test.txt, 50_50/train.txt, idx/test.txt, "
                                             "idx/trainval.txt"]
    cv2.imwrite(str(src / "masks" / f"{train[1]}.png"), np.zeros((10, 12), np.uint8))   # wrong size
    (src / "images" / f"{train[2]}.png").write_bytes(b"not a png")
    info = _info(src, "--split", "idx", "--train-list", "trainval.txt", "-j", "1")
    assert info["images"] == {"train": 5, "test": 3, "total": 8}
    assert info["parts"]["train"]["images"] == 3
    assert [p["id"] for p in info["problems"]] == [train[1], train[2]]
    assert info["problems"][0]["problem"] == "mask is 12x10 but image is 256x256 (width x height)"
    assert "cannot decode" in info["problems"][1]["problem"]
    r = run_cli("info", tmp_path / "nowhere", expect=1)
    assert r.output.strip() == f"error: {tmp_path / 'nowhere'}: dataset folder not found"


def test_worker_count_does_not_change_the_report(demo):
    assert _info(demo, "-j", "1") == _info(demo, "-j", "2")


def test_fingerprint_names_the_known_nudt_split(nudt):
    res = run_cli("info", nudt, "--fingerprint")
    assert res.output == (f"07397e9088512bc28ff0d2c14115e97ed0f009eafa043b7c483229763f02f66b  {nudt} split 50_50 "
                          "(663 train / 664 test): NUDT-SIRST 50_50 (663 train / 664 test)\n")
    data = json.loads(run_cli("info", nudt, "--fingerprint", "--json").output)
    assert data["known"] == "NUDT-SIRST 50_50 (663 train / 664 test)" and data["train"] == 663


def test_fingerprint_of_an_unknown_split_names_none(demo):
    from sirst_synth.store.dataset import Dataset
    from sirst_synth.store.fingerprint import split_fingerprint

    line = run_cli("info", demo, "--fingerprint").output
    assert line == f"{split_fingerprint(Dataset(demo))}  {demo} split 50_50 (20 train / 20 test)\n"
