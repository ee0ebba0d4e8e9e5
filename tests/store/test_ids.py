"""Ids with folder parts (IRDST, NUDT-SIRST-Sea: ``44/1(814)``): read at ``images/44/1(814).png``,
written under their flat name (``44__1(814)``) with ``source_id`` keeping the original; ids that
would leave the dataset are refused by every command, by one rule."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sirst_synth.errors import IdError
from sirst_synth.store.layout import flat_name, flat_names, id_problem

from conftest import run_cli
from support import ids, manifest


@pytest.fixture(scope="module")
def nested(demo: Path, tmp_path_factory) -> Path:
    """The demo data with every other id moved into a folder ``seq<n>/``."""
    root = tmp_path_factory.mktemp("ids") / "src"
    shutil.copytree(demo, root)
    for part in ("train", "test"):
        new = []
        for i, id_ in enumerate(ids(root, "50_50", part)):
            if i % 2 == 0:
                nid = f"seq{i % 3}/{id_}"
                for folder in ("images", "masks"):
                    (root / folder / f"seq{i % 3}").mkdir(exist_ok=True)
                    os.replace(root / folder / f"{id_}.png", root / folder / f"{nid}.png")
                id_ = nid
            new.append(id_)
        (root / "50_50" / f"{part}.txt").write_text("".join(f"{i}\n" for i in new))
    return root


@pytest.mark.parametrize("id_", ["000001", "Misc_1", "plain", "44/1(814)", "a/b/c", "a b/c-d.e", "IRDST/7/2(1)"])
def test_the_one_rule_accepts_folder_parts(id_):
    assert id_problem(id_) is None and "/" not in flat_name(id_)


@pytest.mark.parametrize("id_", ["", "..", "../x", "x/..", "/abs", "a//b", "a/", "./a", "a\\b", "C:x", "a\x00b", "a\tb"])
def test_the_one_rule_refuses_ids_leaving_the_dataset(id_):
    assert id_problem(id_) is not None


def test_flat_names_are_injective_or_refused():
    assert flat_names(["44/1(814)", "44/1(815)"]) == {"44/1(814)": "44__1(814)", "44/1(815)": "44__1(815)"}
    with pytest.raises(IdError, match="both map"):
        flat_names(["a/b", "a__b"])


@pytest.mark.parametrize("stage", ["build", "negaug"])
def test_a_build_writes_flat_ids_and_keeps_the_source_id(nested, tmp_path, stage):
    out = tmp_path / "out"
    args = ("--total", "60") if stage == "build" else ()
    run_cli(stage, "--src", nested, *args, "-o", out, "-j", "1")
    run_cli("verify", out, "-j", "1")
    src_ids = ids(nested, "50_50", "train") + ids(nested, "50_50", "test")
    assert any("/" in i for i in src_ids)
    rows = manifest(out)
    assert all("/" not in r["id"] and "/" not in r["group"] for r in rows)
    originals = {r["source_id"]: r["id"] for r in rows if r["kind"] == "original"}
    assert originals == {i: flat_name(i) for i in src_ids}
    for r in rows:
        if r["kind"] == "original":
            src = nested / "images" / f"{r['source_id']}.png"
            assert (out / "images" / f"{r['id']}.png").read_bytes() == src.read_bytes()
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(f"{r['id']}.png" for r in rows)
    generated = [r for r in rows if r["kind"] != "original"]
    assert generated and all(r["source_id"] in src_ids for r in generated)


def test_export_and_info_read_folder_ids(nested, tmp_path):
    out = tmp_path / "x"
    run_cli("export", nested, "--to", "mshnet", "-o", out)
    listed = (out / "trainval.txt").read_text().split()
    assert listed == [flat_name(i) for i in ids(nested, "50_50", "train")]
    assert all((out / "images" / f"{i}.png").is_file() for i in listed)
    assert "20 train + 20 test" in run_cli("info", nested, "-j", "1").output


def test_two_ids_with_one_flat_name_are_refused_before_writing(nested, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(nested, src)
    first = ids(src, "50_50", "train")[0]  # seq0/<id>
    flat = flat_name(first)
    for folder in ("images", "masks"):
        shutil.copy(src / folder / f"{first}.png", src / folder / f"{flat}.png")
    (src / "50_50" / "train.txt").write_text((src / "50_50" / "train.txt").read_text() + f"{flat}\n")
    out = tmp_path / "out"
    res = run_cli("build", "--src", src, "--total", "60", "-o", out, "-j", "1", expect=1)
    assert res.output == (f"error: ids {first!r} and {flat!r} both map to the file name {flat!r}.png; "
                          "rename one of them\n")
    assert not out.exists()
