"""``build --layout FORMAT``: the build written in another trainer's layout, equal to exporting a
plain build, with its record on top of the dataset folder; a killed build resumes to the same files."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli, run_killed

RUN_LOG = ".sirst-synth-runs.jsonl"
BUILD = ("--total", "300", "-j", "1")


def files(root: Path) -> dict[str, bytes]:
    """Every file by relative path, less the run log and the export record (it names its source folder)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in (RUN_LOG, "sirst-synth-export.json")}


@pytest.fixture(scope="module")
def plain(demo: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layout") / "plain"
    run_cli("build", "--src", demo, *BUILD, "-o", out)
    return out


@pytest.fixture(scope="module")
def basic(demo: Path, tmp_path_factory) -> Path:
    """``build --layout basicirstd --name SIRST-5K -o datasets``: the folder datasets/SIRST-5K/."""
    root = tmp_path_factory.mktemp("layout") / "datasets"
    run_cli("build", "--src", demo, *BUILD, "-o", root, "--layout", "basicirstd", "--name", "SIRST-5K")
    return root / "SIRST-5K"


def test_layout_equals_the_export_of_a_plain_build_with_its_record_on_top(plain, basic, tmp_path):
    run_cli("export", plain, "--to", "basicirstd", "-o", tmp_path / "datasets", "--name", "SIRST-5K")
    got = files(basic)
    for name in ("sirst-synth.json", "manifest.csv"):
        assert got.pop(name) == (plain / name).read_bytes()
    assert got == files(tmp_path / "datasets" / "SIRST-5K")
    assert (basic / "img_idx" / "train_SIRST-5K.txt").is_file()
    assert sorted(p.name for p in basic.parent.iterdir()) == ["SIRST-5K"]  # no staging folder, no lock left


def test_layout_without_name_is_the_folder_of_outs_name(demo, tmp_path):
    out = tmp_path / "SIRST-5K"
    run_cli("build", "--src", demo, "--total", "60", "-j", "1", "-o", out, "--layout", "basicirstd")
    assert sorted(p.name for p in out.iterdir()) == ["SIRST-5K"]
    assert (out / "SIRST-5K" / "sirst-synth.json").is_file()
    res = run_cli("build", "--src", demo, "--total", "60", "-j", "1", "-o", tmp_path / "p", "--name", "X", expect=1)
    assert res.output == "error: --name names the dataset folder of --layout; a plain build is the folder -o\n"


def test_layout_dnanet_is_a_verified_build_with_dnanets_result_folders(demo, plain, tmp_path):
    root = tmp_path / "dataset"
    run_cli("build", "--src", demo, *BUILD, "-o", root, "--layout", "dnanet", "--name", "SIRST-5K")
    out = root / "SIRST-5K"
    for name in ("sirst-synth.json", "manifest.csv", "50_50/train.txt", "50_50/test.txt"):
        assert (out / name).read_bytes() == (plain / name).read_bytes()
    assert (out / "value_result" / "README.txt").is_file() and (out / "visulization_result" / "README.txt").is_file()
    assert run_cli("verify", out, "-j", "1").output.splitlines()[-1].startswith(f"verify: {out} intact: ")


@pytest.mark.slow
def test_killed_layout_build_resumes_to_the_same_files(demo, basic, tmp_path):
    out = tmp_path / "SIRST-5K"
    layout = ("-o", str(tmp_path), "--layout", "basicirstd", "--name", "SIRST-5K")
    run_killed("build", "--src", demo, *BUILD, *layout, point="units:3")
    assert not out.exists()
    res = run_cli("build", "--src", demo, *BUILD, *layout, expect=1)
    assert "use --resume to finish it" in res.output
    res = run_cli("build", "--src", demo, *BUILD, *layout, "--resume")
    assert "(resumed)" in res.output
    assert files(out) == files(basic)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SIRST-5K"]


def test_resume_of_a_finished_layout_checks_layout_and_parameters(demo, basic):
    before = files(basic)
    named = ("-o", basic.parent, "--name", "SIRST-5K")
    assert "(already complete)" in run_cli("build", "--src", demo, *BUILD, *named, "--layout", "basicirstd",
                                           "--resume").output
    res = run_cli("build", "--src", demo, *BUILD, *named, "--layout", "points", "--resume", expect=1)
    assert res.output == (f"error: {basic}: --resume needs the layout it was built with: basicirstd, now points; "
                          "pass the same --layout or use --force to start again\n")
    res = run_cli("build", "--src", demo, "--total", "301", "-j", "1", *named, "--layout", "basicirstd",
                  "--resume", expect=1)
    assert "total was 300, now 301" in res.output
    assert files(basic) == before


def test_layout_and_h5_exclude_each_other(demo, tmp_path):
    res = run_cli("build", "--src", demo, "-o", tmp_path / "x.h5", "--format", "h5", "--layout", "mshnet", expect=1)
    assert res.output == "error: --layout mshnet writes a folder; --format h5 writes one file: choose one\n"
    assert list(tmp_path.iterdir()) == []
