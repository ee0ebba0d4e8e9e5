"""examples/experiment.sh at a tiny scale: timed step choice, a budget stop, resume, the table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import REPO
from train_fixtures import blob_dataset, blob_scene, write_dataset

SCRIPT = REPO / "examples" / "experiment.sh"


def _grouped_build(root: Path) -> Path:
    """A stand-in for a SIRST-5K build: groups of views sharing a label, and a manifest."""
    rng = np.random.default_rng(2)
    items, groups = {}, {}
    for i in range(6):
        image, mask = blob_scene(rng, (64, 64), 1)
        for v in range(1 + i % 3):
            items[f"x{i}_{v}"] = (np.roll(image, v, axis=1), mask)
            groups[f"x{i}_{v}"] = f"x{i}"
    ids = list(items)
    root = write_dataset(root, items, ids, ids[:2], groups=groups)
    (root / "sirst-synth.json").write_text("{}\n")
    return root


def test_experiment_script_writes_its_table(tmp_path: Path) -> None:
    nudt = blob_dataset(tmp_path / "nudt", 8)
    out = tmp_path / "exp"
    env = {
        **os.environ, "NUDT": str(nudt), "OUT": str(out), "SIRST5K": str(_grouped_build(tmp_path / "s5k")),
        "SIRST_SYNTH": f"{sys.executable} -m sirst_synth", "PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[1]), os.environ.get("PYTHONPATH", "")]),
        "WIDTH": "4", "CROP": "32", "BATCH": "4", "RUN_MINUTES": "0.01", "STEP_MULTIPLE": "4", "TIMING_STEPS": "8",
        "EVAL_RESERVE_S": "0", "DEVICE": "cpu", "LOG_EVERY": "4", "OMP_NUM_THREADS": "1",
    }

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True,
                              check=False, timeout=300)

    cut = run(BUDGET_MIN="0", BUDGET_MARGIN_MIN="0")  # no time left: the first run stops after a step
    assert cut.returncode == 0, cut.stderr
    assert "run the same command again" in cut.stdout and not (out / "table.md").exists()
    choice = json.loads((out / "steps.json").read_text())
    steps = choice["steps"]  # the largest multiple of 4 steps that fits 0.6 s with the timed costs
    assert choice["run_seconds"] == 0.6
    assert steps == max(4, int((0.6 - choice["fixed_seconds"]) / choice["seconds_per_step"]) // 4 * 4)
    assert choice["seconds_per_step"] > 0 and choice["device"] == "cpu"
    assert json.loads((out / "run-NUDT-SIRST" / "metrics.json").read_text())["step"] == 1

    done = run()
    assert done.returncode == 0, done.stderr
    table = json.loads((out / "table.json").read_text())
    assert set(table) == {"NUDT-SIRST", "SIRST-5K"}
    assert table["NUDT-SIRST"]["train_images"] == 4 and table["SIRST-5K"]["train_images"] == 12
    for row in table.values():
        assert row["steps"] == steps and row["batch"] == 4 and row["seed"] == 0 and row["eval_images"] == 4
        assert 0 <= row["mIoU"] <= 100
    text = (out / "table.md").read_text()
    assert text.count("\n") == 4 and "| SIRST-5K | 12 |" in text
    again = run()  # everything done: nothing is trained again
    assert again.returncode == 0 and "NUDT-SIRST: done" in again.stdout and "step " not in again.stdout
