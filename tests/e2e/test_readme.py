"""Every command in the README runs as written.

The README's code blocks run in order in one empty folder that holds only the datasets the README
names (NUDT-SIRST, SIRST-release: links to ../shared/datasets), as a user runs them from the folder
holding their datasets. ``sirst-synth`` lines run as a new process there (``python -m sirst_synth``:
the console script's entry point); the output the README shows under a command (its ``# ...``
lines) must be what the command prints, times aside. Every other line of a
code block is listed in :data:`OTHER` with the test that covers it.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import DATASETS, NUDT, REPO, need, tree_digest
from support import manifest

pytestmark = pytest.mark.slow

README = REPO / "README.md"
MAX_LINES = 250

#: the datasets the README's commands name, linked into the folder they run in
DATASET_LINKS = {"NUDT-SIRST": NUDT, "SIRST-release": DATASETS / "SIRST-release"}

#: the NUDT-SIRST build, made once per session by the ``nudt_build`` fixture with the same arguments
#: (and ``-j 2``, which changes no byte): linked as its output instead of being built again
FIXTURE_BUILD = ("build --src NUDT-SIRST --alpha 0.1 --s 3", "SIRST-5K")

#: code lines that are not sirst-synth commands, by their start: what runs them instead
OTHER = {
    "make demo": "tests/e2e/test_examples.py (examples/Makefile)",
    "make test": "CI (.ci/run runs exactly it)",
    "pip install": "installation, done before any test runs",
    "source .venv/bin/activate": "the shell's own; the tests run the installed package",
    'eval "$(_SIRST_SYNTH_COMPLETE=bash_source sirst-synth)"': "test_the_shell_completion_line_defines_a_completion",
}


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)  # the "# ..." lines right under it

    @property
    def args(self) -> list[str]:
        return shlex.split(self.line, comments=True)


def code_lines(text: str) -> list[str]:
    """Lines of the Markdown code blocks: indented by 4 spaces after a blank line, or fenced."""
    lines, out = text.splitlines(), []
    in_indented = in_fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_fenced = not in_fenced
            continue
        if in_fenced:
            out.append(line)
            continue
        if line.startswith("    ") and (in_indented or i == 0 or not lines[i - 1].strip()):
            in_indented = True
            out.append(line[4:])
        elif line.strip():
            in_indented = False
    return out


def readme_commands() -> tuple[list[Command], list[str]]:
    """The README's sirst-synth commands with the output shown under each, and its other code lines."""
    commands: list[Command] = []
    others: list[str] = []
    last: Command | None = None
    for line in code_lines(README.read_text()):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if last is not None:
                last.expected.append(text[1:].strip())
            continue
        if text.startswith("sirst-synth "):
            last = Command(text)
            commands.append(last)
        else:
            last = None
            others.append(text)
    return commands, others


def without_time(line: str) -> str:
    return re.sub(r" in [0-9.]+ s$", "", line.strip())


def test_the_readme_is_a_front_door_of_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= MAX_LINES


def test_every_code_line_is_a_command_that_runs_here_or_is_covered_elsewhere():
    commands, others = readme_commands()
    assert len(commands) >= 10
    uncovered = [line for line in others if not any(line.startswith(start) for start in OTHER)]
    assert uncovered == [], "add each to OTHER with the test that runs it"


def test_the_shell_completion_line_defines_a_completion():
    script = Path(sys.executable).parent / "sirst-synth"
    if not script.exists():
        pytest.skip(f"{script} not installed (pip install -e .)")
    line = next(start for start in OTHER if start.startswith("eval "))
    assert line in README.read_text()
    env = {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run(["bash", "-c", f"{line} && complete -p sirst-synth"], env=env,
                         capture_output=True, text=True, check=True)
    assert "_sirst_synth_completion" in res.stdout


def build_counts(out: Path) -> str:
    """A build's summary line, times aside, from its manifest (as ``build`` prints it)."""
    rows = manifest(out)
    kinds = {kind: sum(r["split"] == "train" and r["kind"] == kind for r in rows)
             for kind in ("original", "displaced", "negative")}
    train, test = sum(kinds.values()), sum(r["split"] == "test" for r in rows)
    return (f"build: {train} train ({kinds['original']} original, {kinds['displaced']} displaced, "
            f"{kinds['negative']} negative) + {test} test images -> {out.name}")


def test_every_readme_command_runs_as_written(nudt_build: Path, tmp_path: Path):
    pytest.importorskip("torch")  # the README trains and scores the demo build
    for name, path in DATASET_LINKS.items():
        (tmp_path / name).symlink_to(need(path), target_is_directory=True)
    before = tree_digest(nudt_build)
    commands, _ = readme_commands()
    assert any(" ".join(cmd.args[1:]) == FIXTURE_BUILD[0] for cmd in commands)
    for cmd in commands:
        if " ".join(cmd.args[1:]) == FIXTURE_BUILD[0]:
            (tmp_path / FIXTURE_BUILD[1]).symlink_to(nudt_build, target_is_directory=True)
            shown = [without_time(e) for e in cmd.expected if e.startswith("build:")]
            assert shown == [build_counts(tmp_path / FIXTURE_BUILD[1])], cmd.line
            continue
        res = subprocess.run([sys.executable, "-m", "sirst_synth", *cmd.args[1:]], cwd=tmp_path,
                             capture_output=True, text=True)
        assert res.returncode == 0, (cmd.line, res.stdout, res.stderr)
        printed = {without_time(out) for out in (res.stdout + res.stderr).splitlines()}
        for expected in cmd.expected:
            assert without_time(expected) in printed, (cmd.line, expected, res.stdout, res.stderr)
    assert tree_digest(nudt_build) == before, "a README command changed the shared NUDT-SIRST build"
    assert (tmp_path / "sheet.png").is_file() and (tmp_path / "SIRST-synth" / "sirst-synth.json").is_file()
