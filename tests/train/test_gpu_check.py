"""examples/gpu_check.sh rehearsed on CPU (TINY=1): at most 8 files into OUT, both arms scored."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sirst_synth.cli import main

from conftest import REPO

pytestmark = pytest.mark.slow

SCRIPT = REPO / "examples" / "gpu_check.sh"


def test_the_gpu_check_rehearses_on_cpu_and_scores_runs_its_guard_stops(tmp_path: Path) -> None:
    nudt = tmp_path / "nudt"
    assert CliRunner().invoke(main, ["demo-data", str(nudt), "-n", "16"]).exit_code == 0
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "NUDT": str(nudt), "DEVICE": "cpu", "TINY": "1",
           "WORK": str(tmp_path / "work"), "SIRST_SYNTH": f"{sys.executable} -m sirst_synth", "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "BUDGET_S": "0", "MARGIN_S": "0", "SCORE_S": "0"}  # no time left: the guard stops every run at once
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["calibration.json", "console.log", "curves.png", "gpu.csv", "run-NUDT-SIRST.json",
                     "run-SIRST-5K.json", "table.json", "table.md"]
    assert not (out / "SIRST-5K").exists() and (tmp_path / "work" / "SIRST-5K" / "sirst-synth.json").is_file()
    calibration = json.loads((out / "calibration.json").read_text())
    table = json.loads((out / "table.json").read_text())
    runs = {r["arm"]: r for r in table["runs"]}
    assert set(runs) == {"NUDT-SIRST", "SIRST-5K"}
    assert {r["steps"] for r in runs.values()} == {calibration["steps"]} == {2}
    assert all(r["steps_done"] == 1 and r["mIoU"] is not None and r["eval_images"] == 8 for r in runs.values())
    assert "1 / 2" in (out / "table.md").read_text()
    assert "calibration: 3 steps" in (out / "console.log").read_text()
