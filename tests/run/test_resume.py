"""An interrupted build (SIGKILL) resumes exactly: byte-identical to an uninterrupted build.

The build runs as a real process that kills its whole process group (parent and workers) with
SIGKILL at a known point (``SIRST_SYNTH_KILL_AFTER``, read by :mod:`sirst_synth.run.journal`):
while copying the sources, in round 0 of the units, and in the last batch (round 1). ``--resume``
must then finish it to the same files and manifest.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sirst_synth.run.journal import KILL_AFTER_ENV

from conftest import run_cli

pytestmark = pytest.mark.slow

TOTAL = "900"
STATE = ".sirst-synth-partial"
RUN_LOG = ".sirst-synth-runs.jsonl"


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """80 train images with about 400 targets: round 0 yields about 680 images, round 1 the rest."""
    root = tmp_path_factory.mktemp("resume") / "src"
    run_cli("demo-data", root, "-n", "160")
    return root


@pytest.fixture(scope="module")
def reference(src: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    run_cli("build", "--src", src, "--total", TOTAL, "-o", out, "-j", "2")
    return out


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def build_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sirst_synth", "-q", "build", "--src", str(src), "--total", TOTAL,
            "-o", str(out), "-j", "2", *extra]


def kill_at(src: Path, out: Path, point: str, *extra: str) -> None:
    """Run a build that SIGKILLs its own process group once the journal ``point`` names
    (``units:5``: the units journal's 5th job) has recorded that many jobs."""
    proc = subprocess.run(build_cmd(src, out, *extra), start_new_session=True, capture_output=True, timeout=300,
                          env={**os.environ, KILL_AFTER_ENV: point})
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def files(root: Path) -> dict[str, bytes]:
    """Every file's bytes by relative path (sirst-synth.json included), less the run log."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != RUN_LOG}


def runs(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / RUN_LOG).read_text().splitlines()]


COPYING, ROUND_0 = "copies:3", "units:5"
LAST_BATCH = "units:81"  # round 0 visits the 80 train images: the 81st unit is round 1's first


@pytest.mark.parametrize("point", [COPYING, ROUND_0, LAST_BATCH])
def test_killed_build_resumes_to_the_uninterrupted_dataset(src, reference, tmp_path, point):
    out = tmp_path / "out"
    kill_at(src, out, point)
    state = out / STATE
    assert state.is_dir() and not (out / "sirst-synth.json").exists() and not (out / "manifest.csv").exists()
    journal, count = point.split(":")
    assert lines(state / f"{journal}.jsonl") == int(count)
    if point == COPYING:
        assert not (state / "units.jsonl").exists()
    assert run_cli("verify", out, expect=1).exit_code == 1          # not complete, and says so

    res = subprocess.run(build_cmd(src, out), capture_output=True, text=True)
    assert res.returncode == 1 and "use --resume to finish it" in res.stderr

    res = subprocess.run(build_cmd(src, out, "--resume"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert files(out) == files(reference)
    assert [r["mode"] for r in runs(out)] == ["resumed"]
    run_cli("verify", out)


def test_resume_clears_temporary_files_of_an_interrupted_finish(src, reference, tmp_path):
    """A kill while the closing files are written leaves their temporary files (tmp + rename);
    --resume removes them with the rest, and the result passes verify."""
    out = tmp_path / "out"
    kill_at(src, out, ROUND_0)
    for name in (".manifest.csv.123.tmp", ".sirst-synth.json.123.tmp", "50_50/.train.txt.123.tmp",
                 "images/.x.png.123.tmp"):
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text("cut short")
    run_cli("build", "--src", src, "--total", TOTAL, "-o", out, "-j", "2", "--resume")
    assert files(out) == files(reference)
    run_cli("verify", out)


def test_corrupt_build_state_is_one_clear_line(src, tmp_path):
    out = tmp_path / "out"
    kill_at(src, out, ROUND_0)
    journal = out / STATE / "units.jsonl"
    journal.write_text("5\n" + journal.read_text())
    res = run_cli("build", "--src", src, "--total", TOTAL, "-o", out, "--resume", expect=1)
    assert res.output.startswith(f"error: {journal}: line 1: not a journal line") and res.output.count("\n") == 1
    (out / STATE / "run.json").write_text("[]")
    res = run_cli("build", "--src", src, "--total", TOTAL, "-o", out, "--resume", expect=1)
    assert res.output == f"error: {out / STATE / 'run.json'}: not a build record; use --force to start again\n"


def test_resume_refuses_other_parameters_or_a_changed_source(src, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(src, source)
    out = tmp_path / "out"
    kill_at(source, out, ROUND_0)
    res = run_cli("build", "--src", source, "--total", TOTAL, "-o", out, "--alpha", "0.2", "--resume", expect=1)
    assert "--resume needs the parameters it was built with: alpha was 0.1, now 0.2" in res.output
    first = (source / "50_50" / "train.txt").read_text().split()[0]
    image = source / "images" / f"{first}.png"
    shutil.copy(source / "images" / f"{(source / '50_50' / 'train.txt').read_text().split()[1]}.png", image)
    res = run_cli("build", "--src", source, "--total", TOTAL, "-o", out, "--resume", expect=1)
    assert "the source changed since it was built" in res.output
    assert not (out / "sirst-synth.json").exists()


def test_resume_of_a_complete_build_does_nothing(reference, src, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    before = files(out)
    res = run_cli("build", "--src", src, "--total", TOTAL, "-o", out, "--resume")
    assert "(already complete)" in res.output
    assert files(out) == before
    res = run_cli("build", "--src", src, "--total", "901", "-o", out, "--resume", expect=1)
    assert "total was 900, now 901" in res.output


def test_resume_with_nothing_there_builds_afresh(src, reference, tmp_path):
    out = tmp_path / "new"
    run_cli("build", "--src", src, "--total", TOTAL, "-o", out, "-j", "2", "--resume")
    assert files(out) == files(reference)


@pytest.mark.parametrize("channels", ["1", "3"])
def test_killed_h5_build_resumes_to_the_same_file(src, tmp_path, channels):
    """`build --format h5` writes its file as the images come; killed mid-build and resumed, the
    images of the first run are read back from the staging folder at their place: the same bytes
    as an uninterrupted build. --resume on the finished file writes nothing."""
    h5 = ("--format", "h5", "--channels", channels)
    reference = tmp_path / "reference.h5"
    subprocess.run(build_cmd(src, reference, *h5), check=True, capture_output=True)
    out = tmp_path / "out.h5"
    staging = out.with_name(out.name + ".building")
    kill_at(src, out, ROUND_0, *h5)
    assert staging.is_dir() and not out.exists()
    res = subprocess.run(build_cmd(src, out, *h5, "--resume"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == reference.read_bytes() and not staging.exists()

    before = sorted(p.name for p in tmp_path.iterdir())
    res = subprocess.run(build_cmd(src, out, *h5, "--resume"), capture_output=True, text=True)
    assert res.returncode == 0 and sorted(p.name for p in tmp_path.iterdir()) == before


def build_staging_only(src: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``build -o OUT --format h5`` stopped once its staging folder is complete, before its file is written."""
    from sirst_synth.plan.params import BuildParams
    from sirst_synth.run.h5_output import H5FileOutput
    from sirst_synth.run.options import RunOptions
    from sirst_synth.run.stages.build import Build
    from sirst_synth.store.dataset import Dataset
    from sirst_synth.store.h5.writer import H5Writer

    def stopped(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(H5Writer, "finish", stopped)
        with pytest.raises(KeyboardInterrupt):
            Build(BuildParams(total=int(TOTAL))).run(Dataset(src), H5FileOutput(out), RunOptions(n_jobs=2))
    assert not out.exists()


def test_an_h5_staging_folder_is_refused_by_png_builds_and_names_a_lost_unit_file(src, tmp_path, monkeypatch):
    """The staging folder of `build --format h5` holds no PNG files of its images: `--layout` (which
    builds PNG files there) refuses to resume it; a unit file lost from it is named; --force
    starts again, unit files included."""
    out = tmp_path / "D"  # `-o D --format h5` and `-o D --layout coco` share the staging folder D.building/
    staging = out.with_name("D.building")
    build_staging_only(src, out, monkeypatch)
    res = subprocess.run(build_cmd(src, out, "--layout", "coco", "--resume"), capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "holds a build --format h5" in res.stderr and "finish it with --format h5" in res.stderr
    lost = sorted((staging / ".sirst-synth-units").iterdir())[3]
    lost.unlink()
    res = subprocess.run(build_cmd(src, out, "--format", "h5", "--resume"), capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr == (f"error: {lost}: cannot read the unit's images (No such file or "
                                                  "directory); use --force to start again\n")
    assert not out.exists()
    res = subprocess.run(build_cmd(src, out, "--format", "h5", "--force"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    reference = tmp_path / "reference.h5"
    subprocess.run(build_cmd(src, reference, "--format", "h5"), check=True, capture_output=True)
    assert out.read_bytes() == reference.read_bytes() and not staging.exists()


def test_h5_staging_folder_left_complete_resumes_from_its_unit_files(src, tmp_path, monkeypatch):
    """A kill after the staging folder of `build --format h5` is complete, before its file is:
    the folder holds each unit's images in one file (no PNG files of generated images), and
    --resume writes the file from them, the same bytes as an uninterrupted build."""
    reference = tmp_path / "reference.h5"
    subprocess.run(build_cmd(src, reference, "--format", "h5"), check=True, capture_output=True)
    out = tmp_path / "out.h5"
    staging = out.with_name(out.name + ".building")
    build_staging_only(src, out, monkeypatch)  # the file of the stopped run is lost; its folder is complete
    assert (staging / "sirst-synth.json").is_file() and not any((staging / "images").iterdir())
    assert any((staging / ".sirst-synth-units").iterdir())
    res = subprocess.run(build_cmd(src, out, "--format", "h5", "--resume"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == reference.read_bytes() and not staging.exists()
