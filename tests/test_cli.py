"""The command line on the demo data: stage commands chained, determinism, refusals, summaries."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np

from conftest import run_cli, tree_digest
from helpers import ids, manifest, read


def test_version_and_help_list_every_command():
    assert "0.1.0" in run_cli("--version").output
    out = run_cli("--help").output
    for command in ("sample-noise", "displace", "negaug", "build", "demo-data"):
        assert command in out


def test_stage_commands_chain_into_a_dataset(demo, tmp_path):
    before = tree_digest(demo)
    bank, disp, neg = tmp_path / "noise.h5", tmp_path / "disp", tmp_path / "neg"
    out = run_cli("sample-noise", "--src", demo, "-o", bank).output
    assert out.startswith("sample-noise:") and "patches" in out
    with h5py.File(bank) as f:
        assert set(s.decode() for s in f["source_id"][()]) <= set(ids(demo, "50_50", "train"))
    out = run_cli("displace", "--src", demo, "--noise", bank, "--alpha", "0.2", "--rounds", "2", "-o", disp).output
    assert out.startswith("displace: 60 train (20 original, 40 displaced, 0 negative) + 20 test")
    out = run_cli("negaug", "--src", disp, "--s", "3", "--only", "displaced", "-o", neg).output
    assert out.startswith("negaug: ")
    rows = manifest(neg)
    train = ids(neg, "50_50", "train")
    assert [r["id"] for r in rows if r["split"] == "train"] == train
    negs = [r for r in rows if r["kind"] == "negative"]
    assert negs and {r["group"] for r in negs} <= {r["id"] for r in rows if r["kind"] == "displaced"}
    # negatives inherit their parent's noise provenance; originals were not negated
    parent = {r["id"]: r for r in rows}
    for r in negs:
        assert r["noise_source_id"] == parent[r["group"]]["noise_source_id"] and r["round"] == parent[r["group"]]["round"]
    assert all(not r["group"].startswith(r["source_id"] + "_t") for r in negs)
    assert ids(neg, "50_50", "test") == ids(demo, "50_50", "test")
    assert tree_digest(demo) == before


def test_build_is_identical_for_any_worker_count_and_rerun(demo, tmp_path):
    outs = []
    for name, jobs in (("a", "1"), ("b", "2"), ("c", "2")):
        out = tmp_path / name
        run_cli("build", "--src", demo, "--total", "150", "-o", out, "-j", jobs)
        outs.append(out)
    ref = {p.relative_to(outs[0]): p.read_bytes() for p in outs[0].rglob("*.*") if p.name != "sirst-synth.json"}
    assert len(ref) == 2 * 170 + 3
    for out in outs[1:]:
        got = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.*") if p.name != "sirst-synth.json"}
        assert got == ref


def test_seed_changes_the_noise_drawn(demo, tmp_path):
    run_cli("build", "--src", demo, "--total", "60", "-o", tmp_path / "s0", "--seed", "0")
    run_cli("build", "--src", demo, "--total", "60", "-o", tmp_path / "s1", "--seed", "1")
    a, b = manifest(tmp_path / "s0"), manifest(tmp_path / "s1")
    assert [r["noise_source_id"] for r in a] != [r["noise_source_id"] for r in b]


def test_total_cuts_the_last_unit_exactly(demo, tmp_path):
    for total in (20, 21, 97):
        out = tmp_path / f"t{total}"
        line = run_cli("build", "--src", demo, "--total", str(total), "-o", out).output
        assert line.startswith(f"build: {total} train")
        assert len(ids(out, "50_50", "train")) == total
        assert len(list((out / "images").iterdir())) == total + 20 == len(list((out / "masks").iterdir()))
    run_cli("build", "--src", demo, "--total", "19", "-o", tmp_path / "small", expect=1)


def test_tile_fit_keeps_the_patch_grain(demo, tmp_path):
    run_cli("build", "--src", demo, "--total", "21", "--fit", "tile", "--alpha", "1", "-o", tmp_path / "t")
    row = next(r for r in manifest(tmp_path / "t") if r["kind"] == "displaced")
    img = read(tmp_path / "t" / "images" / f"{row['id']}.png")
    assert np.array_equal(img[:32, :32], img[32:64, 32:64])   # alpha 1: the tiled 32x32 patch itself


def test_output_inside_source_or_not_empty_is_refused(demo, tmp_path):
    before = tree_digest(demo)
    res = run_cli("build", "--src", demo, "--total", "30", "-o", demo / "out", expect=1)
    assert "inside" in res.output
    res = run_cli("build", "--src", demo, "--total", "30", "-o", demo, expect=1)
    assert tree_digest(demo) == before
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = run_cli("build", "--src", demo, "--total", "30", "-o", out, expect=1)
    assert "not empty" in res.output and "--force" in res.output
    run_cli("build", "--src", demo, "--total", "30", "-o", out, "--force")
    assert len(ids(out, "50_50", "train")) == 30 and (out / "notes.txt").read_text() == "mine"


def test_bad_source_ids_are_listed_and_nothing_is_written(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    train = ids(src, "50_50", "train")
    (src / "masks" / f"{train[0]}.png").unlink()
    (src / "images" / f"{train[1]}.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    res = run_cli("build", "--src", src, "--total", "40", "-o", out, expect=1)
    assert train[0] in res.output and "not found" in res.output
    assert train[1] in res.output and "cannot decode" in res.output
    assert "Traceback" not in res.output and not out.exists()
    run_cli("build", "--src", src, "--total", "40", "-o", out, "--skip-invalid")
    info = json.loads((out / "sirst-synth.json").read_text())
    assert sorted(s["id"] for s in info["source"]["skipped_invalid"]) == sorted(train[:2])
    assert not set(train[:2]) & set(ids(out, "50_50", "train"))


def test_missing_split_names_the_splits_that_exist(demo, tmp_path):
    res = run_cli("build", "--src", demo, "--split", "idx_427", "-o", tmp_path / "o", expect=1)
    assert "idx_427" in res.output and "50_50/train.txt" in res.output


def test_empty_noise_bank_says_which_thresholds_to_relax(demo, tmp_path):
    res = run_cli("sample-noise", "--src", demo, "--max-var", "0.0001", "-o", tmp_path / "n.h5", expect=1)
    assert "--max-var" in res.output and not (tmp_path / "n.h5").exists()
    assert not list(tmp_path.iterdir())


def test_window_larger_than_the_image_is_refused(demo, tmp_path):
    res = run_cli("negaug", "--src", demo, "--s", "301", "-o", tmp_path / "o", expect=1)
    assert "larger than" in res.output
    res = run_cli("negaug", "--src", demo, "--s", "4", "-o", tmp_path / "o", expect=1)
    assert "odd" in res.output
