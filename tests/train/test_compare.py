"""``sirst-synth compare``: a study of arms x seeds at equal steps, resumable, with its table and curves."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sirst_synth.cli import main
from sirst_synth.train.compare import Arm, Study, parse_arm, parse_seeds
from sirst_synth.train.loop import curve_subset

from conftest import REPO
from train_fixtures import blob_dataset

pytestmark = pytest.mark.slow

TINY = ["--width", "4", "--crop", "32", "--batch-size", "4", "--device", "cpu", "--log-every", "2"]


def _compare(out: Path, *extra: str, arms: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "sirst_synth", "compare", *[f"--arm={a}" for a in arms], *TINY, *extra, "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=600)


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    return {"a": blob_dataset(root / "a", 8, seed=1), "b0": blob_dataset(root / "b0", 12, seed=2),
            "b1": blob_dataset(root / "b1", 12, seed=3)}


@pytest.fixture(scope="module")
def study(sets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("study") / "s"
    b = str(sets["b0"]).replace("b0", "b{seed}")
    done = _compare(out, "--test", str(sets["a"]), "--seeds", "0,1", "--steps", "6", "--curve-every", "2",
                    "--curve-images", "2", "-j", "2", arms=(f"real={sets['a']}", f"synth={b}"))
    return out, done


def test_compare_help_lists_the_study_options() -> None:
    result = CliRunner().invoke(main, ["compare", "--help"])
    assert result.exit_code == 0
    for option in ("--arm", "--seeds", "--steps", "--curve-every", "-j", "--precision", "--batch-size"):
        assert option in result.output


def test_a_tiny_study_writes_its_table_and_curves(study: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, done = study
    assert done.returncode == 0, done.stderr
    for name in ("table.md", "table.json", "curves.png", "study.json"):
        assert (out / name).is_file()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((out / "table.json").read_text())
    assert [(r["arm"], r["seed"]) for r in table["runs"]] == [("real", 0), ("synth", 0), ("real", 1), ("synth", 1)]
    assert {r["steps_done"] for r in table["runs"]} == {6} and {r["batch_size"] for r in table["runs"]} == {4}
    assert table["arms"]["real"]["mIoU"]["n"] == 2 and table["arms"]["real"]["mIoU"]["std"] is not None
    synth_runs = [r for r in table["runs"] if r["arm"] == "synth"]
    assert synth_runs[0]["data"].endswith("b0") and synth_runs[1]["data"].endswith("b1")  # {seed}: one set per seed
    paired = table["paired"]["synth"]
    assert paired["against"] == "real" and paired["seeds"] == [0, 1]
    per_seed = {r["seed"]: r["mIoU"] for r in table["runs"] if r["arm"] == "real"}
    assert paired["mIoU"]["per_seed"] == [s["mIoU"] - per_seed[s["seed"]] for s in synth_runs]
    curve = table["runs"][0]["curve"]
    assert [row["step"] for row in curve] == [2, 4, 6]  # the curve subset every 2 steps, all at the end
    assert [row["eval_images"] for row in curve] == [2, 2, 4]
    md = (out / "table.md").read_text()
    assert "| real |" in md and "synth - real" in md and "6 / 6" in md
    assert "--seed" in table["runs"][1]["train_args"] and table["runs"][1]["threads"] == 1


def test_a_rerun_redoes_nothing_and_a_repeated_run_scores_the_same(
        study: tuple[Path, subprocess.CompletedProcess[str]], sets: dict[str, Path], tmp_path: Path) -> None:
    out, _ = study
    b = str(sets["b0"]).replace("b0", "b{seed}")
    args = ("--test", str(sets["a"]), "--seeds", "0,1", "--steps", "6", "--curve-every", "2", "--curve-images", "2")
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/last.pt")}
    again = _compare(out, *args, arms=(f"real={sets['a']}", f"synth={b}"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": done") == 4
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/last.pt")} == before
    # the same run in another study, alone: the same scores (one thread, CPU)
    solo = _compare(tmp_path / "solo", "--test", str(sets["a"]), "--seeds", "1", "--steps", "6", "--curve-every", "2",
                    "--curve-images", "2", arms=(f"real={sets['a']}", f"other={sets['b0']}"))
    assert solo.returncode == 0, solo.stderr
    first = json.loads((out / "table.json").read_text())["runs"][2]
    repeat = json.loads((tmp_path / "solo" / "table.json").read_text())["runs"][0]
    assert (first["arm"], first["seed"]) == (repeat["arm"], repeat["seed"]) == ("real", 1)
    assert [first[k] for k in ("mIoU", "nIoU", "Pd", "Fa")] == [repeat[k] for k in ("mIoU", "nIoU", "Pd", "Fa")]
    assert first["curve"] == repeat["curve"]


def test_a_stopped_study_resumes_its_unfinished_run(sets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "s"
    arms = (f"real={sets['a']}", f"synth={sets['b0']}")
    args = ("--test", str(sets["a"]), "--seeds", "0", "--steps", "6")
    cut = _compare(out, *args, "--stop-after-min", "0", arms=arms)  # every run stops (and is scored) after a step
    assert cut.returncode == 130
    table = json.loads((out / "table.json").read_text())
    assert [r["steps_done"] for r in table["runs"]] == [1, 1] and all(r["mIoU"] is not None for r in table["runs"])
    assert "1 / 6" in (out / "table.md").read_text()
    done = _compare(out, *args, arms=arms)
    assert done.returncode == 0, done.stderr
    assert [r["steps_done"] for r in json.loads((out / "table.json").read_text())["runs"]] == [6, 6]
    other = _compare(out, "--test", str(sets["a"]), "--seeds", "0", "--steps", "8", arms=arms)
    assert other.returncode == 1 and "another steps" in other.stderr


def test_study_inputs_are_checked() -> None:
    assert parse_arm("real=../NUDT-SIRST") == Arm("real", "../NUDT-SIRST")
    assert parse_seeds("0,1,2") == (0, 1, 2)
    for bad in ("real", "=x", "a b=x"):
        with pytest.raises(Exception, match="--arm"):
            parse_arm(bad)
    for bad in ("0,0", "a", "-1"):
        with pytest.raises(Exception, match="--seeds"):
            parse_seeds(bad)
    study = Study((Arm("a", "x{seed}"), Arm("b", "y")), "t", (0, 1), 10)
    assert [(a.name, s) for a, s in study.runs()] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


def test_missing_arm_data_is_one_line(sets: dict[str, Path], tmp_path: Path) -> None:
    done = _compare(tmp_path / "s", "--test", str(sets["a"]), "--seeds", "0,1", "--steps", "2",
                    arms=(f"real={sets['a']}", f"synth={tmp_path}/b{{seed}}"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: --arm synth={tmp_path}/b{{seed}}: {tmp_path}/b0 not found (seed 0)"]


def test_curve_subset_spreads_over_the_split() -> None:
    ids = [f"i{k}" for k in range(10)]
    assert curve_subset(ids, 3) == ["i0", "i4", "i9"] or curve_subset(ids, 3) == ["i0", "i5", "i9"]
    assert curve_subset(ids, None) == ids and curve_subset(ids, 20) == ids
