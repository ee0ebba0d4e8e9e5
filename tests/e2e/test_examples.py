"""examples/Makefile: the README's demo pipeline runs end to end on data the project makes."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from support import ids, manifest


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_demo_makefile_chains_the_stage_commands(tmp_path):
    out = tmp_path / "demo-out"
    cmd = ["make", "-s", "-C", str(REPO / "examples"), f"OUT={out}", f"SIRST_SYNTH={sys.executable} -m sirst_synth"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    for name in ("data", "displaced", "negatives", "SIRST-5K"):
        assert (out / name / "50_50" / "test.txt").exists()
    assert len(ids(out / "SIRST-5K", "50_50", "train")) == 250
    assert {r["round"] for r in manifest(out / "SIRST-5K") if r["kind"] != "original"} == {"0", "1"}
    assert {r["kind"] for r in manifest(out / "negatives")} == {"original", "displaced", "negative"}
    marks = {p: p.stat().st_mtime_ns for p in out.rglob("sirst-synth.json")}
    again = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert again.stdout == ""                      # everything up to date: nothing rerun
    assert {p: p.stat().st_mtime_ns for p in out.rglob("sirst-synth.json")} == marks
