"""The build when things go wrong: a full disk, a kill while the source is checked and a finished output
each answer with one line naming the right thing, exit status 1, and nothing left outside the output.

- the free space is checked before anything is written (:mod:`sirst_synth.run.space`);
- the build's temporary files (its noise bank) live in the output's scratch folder, and the bank is
  raw pixels with a JSON index, not HDF5, so a failed write is a plain error line, never a signal;
- ``--resume`` on a finished output answers at once (command, parameters and the source
  fingerprint from file hashes; no image decoded);
- a finished folder points to ``--resume`` before ``--force``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import pytest

from sirst_synth.store.layout import SCRATCH_NAME, STATE_NAME

from conftest import run_cli, run_killed, tree_digest

BUILD = ("--total", "60", "-j", "1")
FINISHED = ("holds a finished build; --resume with the same options checks it and has nothing to do, --force "
            "builds it again")
Usage = namedtuple("Usage", "total used free")


@pytest.fixture(scope="module")
def reference(demo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    run_cli("build", "--src", demo, *BUILD, "-o", out)
    return out


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch) -> Path:
    """An empty TMPDIR for this test (and the processes it starts): it must stay empty."""
    import tempfile

    folder = tmp_path / "TMPDIR"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".sirst-synth-runs.jsonl"}


def full_disk(free: int):
    def usage(path):
        return Usage(10**12, 10**12 - free, free)
    return usage


# -- a full disk ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["png", "h5"])
def test_a_disk_without_room_is_refused_before_anything_is_written(demo, tmp_path, monkeypatch, tmpdir_env, fmt):
    before = tree_digest(demo)
    out = tmp_path / ("out.h5" if fmt == "h5" else "out")
    monkeypatch.setattr(shutil, "disk_usage", full_disk(200_000))
    res = run_cli("build", "--src", demo, *BUILD, "--format", fmt, "-o", out, expect=1)
    assert re.fullmatch(rf"error: {re.escape(str(out))}: this build needs about \d+(\.\d)? MB of free space there, "
                        r"and 200 kB is free; free some space or choose another -o\n", res.output), res.output
    assert list(tmp_path.iterdir()) == [tmpdir_env] and not any(tmpdir_env.iterdir())
    assert tree_digest(demo) == before


def test_the_space_needed_is_that_of_the_build(demo, reference, tmp_path, monkeypatch):
    """The estimate is within 1.5 x of what the build takes; a resume counts what is already there."""
    from sirst_synth.plan.params import BuildParams
    from sirst_synth.run.space import source_sizes, used_by
    from sirst_synth.run.stages.build import Build
    from sirst_synth.store.reader import open_dataset

    need = Build(BuildParams(total=60)).space_needed(source_sizes(open_dataset(demo)))
    took = used_by([reference / "images", reference / "masks"])
    assert took <= need <= 1.5 * took
    monkeypatch.setattr(shutil, "disk_usage", full_disk(need // 10))
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    (copy / "sirst-synth.json").unlink()
    (copy / STATE_NAME).mkdir()  # an interrupted build with every image in place: little is needed
    res = run_cli("build", "--src", demo, *BUILD, "-o", copy, "--resume", expect=1)
    assert "free space" not in res.output  # past the space check (then refused: no record of the run)
    res = run_cli("build", "--src", demo, *BUILD, "-o", tmp_path / "new", expect=1)
    assert "free space" in res.output


def test_a_full_disk_while_the_bank_is_written_is_one_line_and_exit_1(demo, tmp_path, tmpdir_env):
    """A real process: the write of the noise bank fails (ENOSPC); one error line naming the file in
    the output's scratch folder, exit status 1 (not a signal: the bank is no HDF5 file), nothing left."""
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        from sirst_synth.cli import main
        from sirst_synth.store import noisebank
        noisebank._FLUSH_PIXELS = 1
        def full(self, pixels):
            raise OSError(28, "No space left on device")
        noisebank.RawBankWriter._append = full
        sys.argv = ["sirst-synth", "build", "--src", {str(demo)!r}, "--total", "60", "-j", "1", "-o", {str(out)!r}]
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    scratch = re.escape(str(out / SCRATCH_NAME))
    assert re.fullmatch(rf"error: {scratch}/\.noise-bank\.bin\.\d+\.tmp: cannot write \(No space left on device\)\n",
                        proc.stderr), proc.stderr
    assert not out.exists() and not any(tmpdir_env.iterdir())


# -- a kill while the source is checked ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("then", ["--resume", "--force"])
def test_a_kill_while_checking_the_source_leaves_nothing_elsewhere_and_resume_or_force_cleans(
        demo, reference, tmp_path, tmpdir_env, then):
    out = tmp_path / "out"
    run_killed("build", "--src", demo, *BUILD, "-o", out, point="scan:30")
    assert not any(tmpdir_env.iterdir())                     # nothing outside the output
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [re.sub(r"\d+", "N", p) for p in left] == [".sirst-synth-lock", f"{SCRATCH_NAME}/.noise-bank.bin.N.tmp"]
    res = run_cli("build", "--src", demo, *BUILD, "-o", out, expect=1)
    assert res.output == f"error: {out}: output folder is not empty; an interrupted build: use --resume to finish it\n"
    res = run_cli("build", "--src", demo, *BUILD, "-o", out, then)
    assert not (out / SCRATCH_NAME).exists() and not (out / STATE_NAME).exists()
    assert files(out) == files(reference)
    assert not any(tmpdir_env.iterdir())
    run_cli("verify", out, "-j", "1")


def test_a_build_writes_nothing_outside_its_output(demo, reference, tmp_path, tmpdir_env):
    out = tmp_path / "out"
    run_cli("build", "--src", demo, *BUILD, "-o", out)
    assert files(out) == files(reference) and not any(tmpdir_env.iterdir())


def test_force_keeps_the_bank_it_just_sampled_and_clears_the_rest(demo, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / SCRATCH_NAME).mkdir()
    (out / SCRATCH_NAME / f".noise-bank.bin.{os.getpid() + 1}.tmp").write_bytes(b"left by a killed run")
    run_cli("build", "--src", demo, *BUILD, "-o", out, "--force")
    assert files(out) == files(reference) and not (out / SCRATCH_NAME).exists()


# -- a finished output -------------------------------------------------------------------------------

def test_resume_on_a_finished_build_answers_without_checking_the_images(demo, reference, tmp_path, monkeypatch):
    from sirst_synth.run import scan as scan_module
    from sirst_synth.run.stages import base, sample_noise

    def no_scan(*args, **kwargs):
        raise AssertionError("the source was scanned")

    for module in (scan_module, base, sample_noise):
        monkeypatch.setattr(module, "scan", no_scan)
    before = files(reference)
    res = run_cli("build", "--src", demo, *BUILD, "-o", reference, "--resume")
    assert re.search(rf"-> {re.escape(str(reference))} \(already complete\) in 0\.\d s\n$", res.output), res.output
    assert files(reference) == before
    res = run_cli("build", "--src", demo, "--total", "61", "-j", "1", "-o", reference, "--resume", expect=1)
    assert "--resume needs the parameters it was built with: total was 60, now 61" in res.output
    monkeypatch.undo()

    src = tmp_path / "src"                      # a changed source: checked whole, refused as before
    shutil.copytree(demo, src)
    first = (src / "50_50" / "test.txt").read_text().split()[0]
    data = bytearray((src / "images" / f"{first}.png").read_bytes())
    (src / "images" / f"{first}.png").write_bytes(bytes(data) + b"\0")  # a byte after IEND: decodes the same
    res = run_cli("build", "--src", src, *BUILD, "-o", reference, "--resume", expect=1)
    assert "the source changed since it was built" in res.output
    assert files(reference) == before


def test_a_finished_output_points_to_resume_before_force(demo, reference, tmp_path):
    res = run_cli("build", "--src", demo, *BUILD, "-o", reference, expect=1)
    assert res.output == f"error: {reference}: {FINISHED} (replacing what sirst-synth wrote there; other files stay)\n"
    out = tmp_path / "datasets"
    run_cli("build", "--src", demo, *BUILD, "--layout", "mshnet", "-o", out)
    res = run_cli("build", "--src", demo, *BUILD, "--layout", "mshnet", "-o", out, expect=1)
    assert res.output == f"error: {out}: {FINISHED} (replacing what sirst-synth wrote there; other files stay)\n"
    assert "(already complete)" in run_cli("build", "--src", demo, *BUILD, "--layout", "mshnet", "-o", out,
                                           "--resume").output
