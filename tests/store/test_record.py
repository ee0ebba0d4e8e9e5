"""``sirst-synth.json`` is reproducible: identical builds give identical files, the record
included; how each run went (mode, seconds) goes to the run log. The record holds the train
images' ``img_norm_cfg``, which ``info`` reports for a source too."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import img_norm_cfg

from conftest import run_cli

RUN_LOG = ".sirst-synth-runs.jsonl"


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def builds(demo: Path, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("record")
    for name, jobs in (("a", "1"), ("b", "2")):
        run_cli("build", "--src", demo, "--total", "60", "-o", base / name, "-j", jobs)
    return base / "a", base / "b"


def test_two_identical_builds_are_byte_identical_record_included(builds):
    a, b = builds
    fa, fb = files(a), files(b)
    assert fa.pop(RUN_LOG) != fb.pop(RUN_LOG)  # the one file that says when and how fast
    assert fa == fb and "sirst-synth.json" in fa
    record = json.loads(fa["sirst-synth.json"])
    assert "elapsed_seconds" not in record and "resumed" not in record


def test_run_log_holds_mode_and_seconds(builds):
    for out in builds:
        runs = [json.loads(line) for line in (out / RUN_LOG).read_text().splitlines()]
        assert len(runs) == 1 and runs[0]["mode"] == "fresh" and runs[0]["command"] == "build"
        assert runs[0]["seconds"] > 0 and f"-o {out}" in runs[0]["argv"]


def test_record_holds_img_norm_cfg_of_the_train_images(builds):
    a, _ = builds
    record = json.loads((a / "sirst-synth.json").read_text())
    assert record["img_norm_cfg"] == {"part": "train", **img_norm_cfg(Dataset(a))}
    assert record["img_norm_cfg"]["images"] == 60
    info = json.loads(run_cli("info", a, "--json", "-j", "1").stdout)
    assert info["img_norm_cfg"] == record["img_norm_cfg"] == info["build"]["img_norm_cfg"]
    assert info["build"]["runs"][0]["mode"] == "fresh"


def test_info_reports_img_norm_cfg_of_a_source(demo):
    info = json.loads(run_cli("info", demo, "--json", "-j", "1").stdout)
    assert info["img_norm_cfg"] == {"part": "train", **img_norm_cfg(Dataset(demo))}
    text = run_cli("info", demo, "-j", "1").output
    norm = info["img_norm_cfg"]
    assert (f"img_norm_cfg (train, gray 0..255, all pixels pooled): mean {norm['mean']:.6f}, "
            f"std {norm['std']:.6f}") in text


def test_hdf5_build_stores_the_same_record(builds, demo, tmp_path):
    a, _ = builds
    out = tmp_path / "a.h5"
    run_cli("build", "--src", demo, "--total", "60", "--format", "h5", "-o", out, "-j", "1")
    with h5py.File(out) as f:
        assert f.attrs["info"] == (a / "sirst-synth.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]  # no lock, no staging folder left
