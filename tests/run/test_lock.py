"""One writer per output: a second command writing the same output is refused at once, naming
the running process; the lock a killed command leaves never blocks ``--resume`` or ``--force``."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sirst_synth.run.lock import OutputLock
from sirst_synth.store.layout import lock_path

from conftest import run_cli, run_killed

LOCK = ".sirst-synth-lock"
STATE = ".sirst-synth-partial"


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "sirst_synth", "-q", *map(str, args)]


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_two_builds_at_once_one_runs_and_the_other_is_refused_naming_it(demo, tmp_path):
    out = tmp_path / "out"
    args = ("build", "--src", demo, "--total", "300", "-o", out, "-j", "1")
    procs = [subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    ended: dict[int, float] = {}
    deadline = time.monotonic() + 300
    while len(ended) < 2:
        assert time.monotonic() < deadline, "the builds did not end"
        for i, proc in enumerate(procs):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.monotonic()
        time.sleep(0.01)
    outputs = [proc.communicate() for proc in procs]
    codes = [proc.returncode for proc in procs]
    assert sorted(codes) == [0, 1], outputs
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert ended[loser] < ended[winner]  # refused while the other was still running
    err = outputs[loser][1]
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {out}: in use by a running sirst-synth (pid {procs[winner].pid}: "
                          f"sirst-synth -q build --src {demo} --total 300 -o {out} -j 1)")
    assert not (out / LOCK).exists()
    run_cli("verify", out, "-j", "1")


def _kill_mid_build(demo: Path, out: Path) -> None:
    pid = run_killed("build", "--src", demo, "--total", "300", "-o", out, "-j", "1", point="units:3")
    assert lines(out / STATE / "units.jsonl") == 3
    assert (out / LOCK).is_file() and str(pid) in (out / LOCK).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["--resume", "--force"])
def test_the_lock_of_a_killed_build_blocks_neither_resume_nor_force(demo, tmp_path, how):
    out = tmp_path / "out"
    _kill_mid_build(demo, out)
    assert "run build --resume" in run_cli("verify", out, "-j", "1", expect=1).output
    res = run_cli("build", "--src", demo, "--total", "300", "-o", out, "-j", "1", how)
    assert ("(resumed)" in res.output) == (how == "--resume")
    assert not (out / LOCK).exists()
    run_cli("verify", out, "-j", "1")


def _held(out: Path, inside: bool) -> OutputLock:
    if inside:
        out.mkdir(parents=True, exist_ok=True)
    return OutputLock(out, lock_path(out, inside)).acquire()


@pytest.mark.parametrize("name, args, inside", [
    ("build", ("build", "--src", "{demo}", "--total", "60", "-o", "{out}"), True),
    ("build --resume", ("build", "--src", "{demo}", "--total", "60", "-o", "{out}", "--resume"), True),
    ("negaug", ("negaug", "--src", "{demo}", "-o", "{out}"), True),
    ("build --format h5", ("build", "--src", "{demo}", "--total", "60", "--format", "h5", "-o", "{out}"), False),
    ("sample-noise", ("sample-noise", "--src", "{demo}", "-o", "{out}"), False),
    ("import", ("import", "dnanet", "{demo}", "-o", "{out}"), False),
    ("export", ("export", "{demo}", "--to", "mshnet", "-o", "{out}"), False),
    ("export into a folder a build writes", ("export", "{demo}", "--to", "mshnet", "-o", "{out}", "--force"), True),
])
def test_every_writing_command_refuses_an_output_being_written(demo, tmp_path, name, args, inside):
    out = tmp_path / "out"
    lock = _held(out, inside)
    try:
        res = run_cli(*(a.format(demo=demo, out=out) for a in args), expect=1)
    finally:
        lock.release()
    assert res.output.startswith(f"error: {out}: in use by a running sirst-synth (pid {os.getpid()}: "), res.output
    assert res.output.count("\n") == 1
    assert not out.exists() or list(out.iterdir()) == []  # nothing written
    assert list(tmp_path.iterdir()) in ([], [out])
