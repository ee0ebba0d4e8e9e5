"""A study: the same model trained on several training sets (arms) with several seeds, at equal
steps and batch, every run scored on one test set.

Each run is a ``sirst-synth train`` process with one thread (``OMP_NUM_THREADS=1``), so its result
does not depend on how many run at once (``jobs``) or on the machine's load, only its time does.
Runs go seeds first, then arms, so a partial study already holds paired runs. The study folder:

- ``study.json``: the study's definition; a rerun must give the same one (then it resumes).
- ``runs/<arm>-s<seed>/``: the run folder of ``train`` (``last.pt``, ``metrics.json``,
  ``log.csv``); its console goes to ``logs/<arm>-s<seed>.log``. A finished run is never redone;
  an unfinished one continues from its ``last.pt``.
- ``table.md``, ``table.json``, ``curves.png`` (:mod:`sirst_synth.train.report`), rewritten after
  every finished run.

An arm's data may hold ``{seed}``: each seed then trains on its own build (e.g. a build with that
``--seed``), so the seed changes the synthetic data too.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sirst_synth.errors import TrainError
from sirst_synth.train.config import RESUME_MAY_CHANGE

#: files ``train`` writes into a run folder; a run folder without last.pt holding only these is restarted.
RUN_FILES = ("best.pt", "metrics.json", "log.csv")
STUDY_FILE = "study.json"


@dataclass(frozen=True)
class Arm:
    """One training set of a study: a name and its dataset (a path, ``{seed}`` filled per seed)."""

    name: str
    data: str

    def data_for(self, seed: int) -> str:
        """The dataset path of this arm for ``seed``."""
        return os.path.abspath(self.data.replace("{seed}", str(seed)))


@dataclass(frozen=True)
class Study:
    """What a study runs: arms x seeds, each ``steps`` steps with the same train options."""

    arms: tuple[Arm, ...]
    test: str
    seeds: tuple[int, ...]
    steps: int
    curve_every: int | None = None
    curve_images: int = 64
    #: train options shared by every run (``--name value``; True: a flag; False: its ``--no-`` form)
    train_options: dict[str, Any] = field(default_factory=dict)

    def run_name(self, arm: Arm, seed: int) -> str:
        """The run folder's name: ``<arm>-s<seed>``."""
        return f"{arm.name}-s{seed}"

    def runs(self) -> list[tuple[Arm, int]]:
        """Every run, seeds first then arms."""
        return [(arm, seed) for seed in self.seeds for arm in self.arms]

    def train_args(self, arm: Arm, seed: int, run_dir: Path) -> list[str]:
        """The ``sirst-synth train`` arguments of one run."""
        args = ["--data", arm.data_for(seed), "--eval-data", os.path.abspath(self.test),
                "--steps", str(self.steps), "--seed", str(seed)]
        if self.curve_every:
            args += ["--eval-every", str(self.curve_every), "--curve-images", str(self.curve_images)]
        return [*args, *self.option_args(), "-o", str(run_dir)]

    def option_args(self, only: tuple[str, ...] | None = None) -> list[str]:
        """The shared train options as arguments (``only`` these names, when given)."""
        args: list[str] = []
        for name, value in sorted(self.train_options.items()):
            flag = "--" + name.replace("_", "-")
            if only is not None and name not in only:
                continue
            if value is True:
                args.append(flag)
            elif value is False:
                args.append("--no-" + flag[2:])
            elif value is not None:
                args += [flag, str(value)]
        return args

    def record(self) -> dict[str, Any]:
        """The definition kept in ``study.json`` (paths resolved; options a rerun may change left out)."""
        return {"arms": [{"name": a.name, "data": os.path.abspath(a.data)} for a in self.arms],
                "test": os.path.abspath(self.test), "seeds": list(self.seeds), "steps": self.steps,
                "curve_every": self.curve_every, "curve_images": self.curve_images,
                "train_options": {k: v for k, v in sorted(self.train_options.items()) if k not in RESUME_MAY_CHANGE}}


def parse_arm(text: str) -> Arm:
    """``NAME=PATH`` -> :class:`Arm`; a name is letters, digits, ``-``, ``_`` and ``.``."""
    name, sep, data = text.partition("=")
    if not sep or not name or not data:
        raise TrainError(f"--arm {text}: expected NAME=PATH")
    if not all(c.isalnum() or c in "-_." for c in name):
        raise TrainError(f"--arm {text}: the name may hold only letters, digits, '-', '_' and '.'")
    return Arm(name, data)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` -> (0, 1, 2): distinct non-negative integers."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise TrainError(f"--seeds {text}: expected integers separated by commas, e.g. 0,1,2") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise TrainError(f"--seeds {text}: seeds must be distinct and >= 0")
    return seeds


def check_study(study: Study) -> None:
    """Refuse a study whose names clash or whose data is missing, before any run starts."""
    names = [a.name for a in study.arms]
    if len(study.arms) < 2:
        raise TrainError("--arm: a study compares at least two arms")
    if len(set(names)) != len(names):
        raise TrainError(f"--arm: arm names repeat ({', '.join(names)})")
    if not os.path.exists(study.test):
        raise TrainError(f"--test {study.test}: dataset not found")
    for arm, seed in study.runs():
        if not os.path.exists(arm.data_for(seed)):
            raise TrainError(f"--arm {arm.name}={arm.data}: {arm.data_for(seed)} not found (seed {seed})")


def open_study(out: Path, study: Study) -> None:
    """Create the study folder, or check that the one there holds this same study."""
    record = study.record()
    path = out / STUDY_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        for key in record:
            if saved.get(key) != record[key]:
                raise TrainError(f"{path}: this folder holds a study with another {key} "
                                 f"({saved.get(key)!r}); give the same options to resume it, or another -o")
        return
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out}: folder is not empty and holds no {STUDY_FILE}; choose another -o")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def run_state(run_dir: Path) -> str:
    """``done``, ``resume`` (a ``last.pt`` of an unfinished run) or ``fresh``."""
    metrics = run_dir / "metrics.json"
    if metrics.is_file() and json.loads(metrics.read_text()).get("done"):
        return "done"
    return "resume" if (run_dir / "last.pt").is_file() else "fresh"


def _clear_unstarted(run_dir: Path) -> None:
    """Remove what ``train`` wrote into a run folder before its first ``last.pt`` (nothing else)."""
    if not run_dir.exists():
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES)
    if foreign:
        raise TrainError(f"{run_dir}: holds {', '.join(foreign)}, not written by train; remove it or choose another -o")
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


class _Children:
    """The running train processes, so that SIGTERM and SIGINT reach them (they save and stop)."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self.stopping = False

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def remove(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def forward(self, signum: int) -> None:
        self.stopping = True
        with self._lock:
            for proc in self._procs:
                if proc.poll() is None:
                    proc.send_signal(signum)


def _train_command() -> list[str]:
    return [sys.executable, "-m", "sirst_synth", "train"]


def one_thread_env() -> dict[str, str]:
    """The environment of a run: one intra-op thread for torch, OpenMP and BLAS."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def console_log(out: Path, name: str) -> Path:
    """Where the console of run ``name`` goes."""
    return out / "logs" / f"{name}.log"


def run_one(study: Study, arm: Arm, seed: int, out: Path, children: _Children) -> tuple[str, int]:
    """Train (or resume) one run to its end; return (state before, exit status)."""
    run_dir = out / "runs" / study.run_name(arm, seed)
    state = run_state(run_dir)
    if state == "done" or children.stopping:
        return state, 0
    if state == "fresh":
        _clear_unstarted(run_dir)
        args = study.train_args(arm, seed, run_dir)
    else:
        args = ["--resume", *study.option_args(RESUME_MAY_CHANGE), "-o", str(run_dir)]
    with open(console_log(out, study.run_name(arm, seed)), "ab") as console:
        proc = subprocess.Popen([*_train_command(), *args], stdout=console, stderr=subprocess.STDOUT,
                                env=one_thread_env(), start_new_session=True)
        children.add(proc)
        try:
            code = proc.wait()
        finally:
            children.remove(proc)
    return state, code


def run_study(study: Study, out: str | os.PathLike, jobs: int = 1,
              on_report: Callable[[Path], object] | None = None,
              log: Callable[[str], None] = print) -> bool:
    """Run every unfinished run of ``study`` in ``out``, ``jobs`` at once; True when all are done.

    ``on_report(out)`` is called after each finished run (and once at the start) to rewrite the
    tables and curves from what is done so far.
    """
    out = Path(out)
    check_study(study)
    open_study(out, study)
    runs = study.runs()
    log(f"study: {len(study.arms)} arms x {len(study.seeds)} seeds = {len(runs)} runs of {study.steps} steps, "
        f"{jobs} at a time with one thread each; in {out}")
    if on_report is not None:
        on_report(out)
    children = _Children()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, _frame: children.forward(signum))
    failed: list[str] = []
    report_lock = threading.Lock()

    def work(item: tuple[Arm, int]) -> None:
        arm, seed = item
        name = study.run_name(arm, seed)
        t = time.perf_counter()
        before, code = run_one(study, arm, seed, out, children)
        if before == "done":
            log(f"{name}: done")
            return
        if children.stopping:
            log(f"{name}: stopped (its last.pt is saved; run the same command again to continue)")
            return
        if code != 0:
            failed.append(name)
            log(f"{name}: train exited with status {code}; see {console_log(out, name)}")
            return
        log(f"{name}: {'resumed and ' if before == 'resume' else ''}finished in {time.perf_counter() - t:.0f} s"
            + _scores_phrase(out / "runs" / name))
        if on_report is not None:
            with report_lock:
                on_report(out)

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(work, runs))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise TrainError(f"{len(failed)} run(s) failed: {', '.join(failed)}")
    return all(run_state(out / "runs" / study.run_name(a, s)) == "done" for a, s in runs)


def _scores_phrase(run_dir: Path) -> str:
    try:
        last = json.loads((run_dir / "metrics.json").read_text())["last"] or {}
    except (OSError, KeyError, ValueError):
        return ""
    return "".join(f"  {k} {last[k]:.2f}" for k in ("mIoU", "nIoU", "Pd", "Fa") if last.get(k) is not None)

