"""Shared fixtures: the real datasets from ../shared/datasets, demo data, builds made once per session."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sirst_synth.cli import main
from sirst_synth.run.journal import KILL_AFTER_ENV

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SIRST_SYNTH_DATASETS", REPO.parent / "shared" / "datasets"))
NUDT = DATASETS / "NUDT-SIRST"
SIRST = DATASETS / "SIRST"


def tree_digest(root: Path) -> str:
    """One hash over every file's relative path, bytes and mode under ``root``."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + oct(path.stat().st_mode).encode() + b"\0")
        if path.is_file():
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def run_cli(*args: str, expect: int = 0):
    """Run ``sirst-synth ARGS`` in-process; assert the exit status."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    return result


def demo_build(base: Path, total: int) -> Path:
    """``demo-data`` (40 images) in ``base/demo``, then a ``--total total`` build of it in ``base/build``."""
    run_cli("demo-data", base / "demo")
    run_cli("build", "--src", base / "demo", "-o", base / "build", "--total", str(total), "-j", "1")
    return base / "build"


def run_killed(*args: str, point: str) -> int:
    """Run ``sirst-synth -q ARGS`` as a process that SIGKILLs its own process group (parent and
    workers) once the journal ``point`` names has recorded that many jobs (``units:3``); return its pid."""
    proc = subprocess.Popen([sys.executable, "-m", "sirst_synth", "-q", *map(str, args)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, KILL_AFTER_ENV: point})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    return proc.pid


def need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"{path} not found (set SIRST_SYNTH_DATASETS to the folder holding NUDT-SIRST and SIRST)")
    return path


@pytest.fixture(scope="session")
def nudt() -> Path:
    return need(NUDT)


@pytest.fixture(scope="session")
def nudt_digest(nudt: Path):
    """The source's digest before the session's commands; checked again after them."""
    before = tree_digest(nudt)
    yield before
    assert tree_digest(nudt) == before, "NUDT-SIRST source folder changed"


@pytest.fixture(scope="session")
def nudt_build(nudt: Path, nudt_digest: str, tmp_path_factory) -> Path:
    """The default SIRST-5K build of NUDT-SIRST, with two workers."""
    out = tmp_path_factory.mktemp("nudt") / "SIRST-5K"
    run_cli("build", "--src", nudt, "--alpha", "0.1", "--s", "3", "-o", out, "-j", "2")
    assert tree_digest(nudt) == nudt_digest
    return out


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """A small synthetic dataset made by ``sirst-synth demo-data``."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    run_cli("demo-data", out)
    return out


@pytest.fixture(scope="session")
def nudt_noise(nudt: Path, tmp_path_factory) -> Path:
    """The noise bank of NUDT-SIRST's train split (``sample-noise``, default thresholds)."""
    out = tmp_path_factory.mktemp("noise") / "noise.h5"
    run_cli("sample-noise", "--src", nudt, "-o", out, "-j", "2")
    return out


#: fixtures that build or sample the full NUDT-SIRST: a test using one is in the slow tier.
SLOW_FIXTURES = {"nudt_build", "nudt_noise"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` (left out by ``make test-fast``): tests on a full NUDT-SIRST build, and those marked so."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
