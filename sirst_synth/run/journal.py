"""The journals of an unfinished build, kept in its state folder so ``--resume`` can finish it.

    OUT/.sirst-synth-partial/run.json       command, parameters, source fingerprint (written first,
                                            by :mod:`sirst_synth.run.state`)
    OUT/.sirst-synth-partial/noise-bank.json, noise-bank.bin
                                            the build's noise bank (raw pixels and their index, not
                                            HDF5; workers read it by path)
    OUT/.sirst-synth-partial/<stage>.jsonl  one line per finished job: its key and manifest rows

Before the state folder exists, while the source is checked, the bank is sampled in the scratch
folder ``OUT/.sirst-synth-scratch/`` (:func:`~sirst_synth.store.layout.scratch_dir`), so a build
writes nothing outside its output, whenever it is stopped; every later run removes what a killed
one left there.

A journal line is appended by the parent once a job's files are renamed into place, in job order,
so a journal is always a prefix of the plan: ``--resume`` replays it and runs what is missing.
Rows also stream from the journals into ``manifest.csv`` at the end, so a build never holds all of
its rows in memory. The folder is removed when the dataset is complete; while it exists, the
dataset has no ``sirst-synth.json`` and is not complete.
"""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from sirst_synth.errors import ResumeError
from sirst_synth.progress import Progress
from sirst_synth.run.parallel import run_jobs
from sirst_synth.store.manifest import COLUMNS, SUMS, Row

#: for tests only: ``<point>:<n>`` makes the run SIGKILL its own process group (the parent and its
#: workers) at a known point: ``units:5``, right after that journal records its 5th job; ``scan:40``,
#: right after the source check has taken in its 40th id (:func:`kill_point`).
KILL_AFTER_ENV = "SIRST_SYNTH_KILL_AFTER"


def _encode(key: str, rows: list[Row]) -> bytes:
    """``[key, rows' column values]``, plus the rows' image sums (:data:`SUMS`) when they carry them."""
    entry: list[Any] = [key, [[r[c] for c in COLUMNS] for r in rows]]
    if any(SUMS in r for r in rows):
        entry.append([r.get(SUMS) for r in rows])
    return (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")


def _decode(line: bytes) -> tuple[str, list[Row]]:
    """A journal line's key and rows (with their sums, when recorded); ValueError when the line is not one."""
    try:
        key, values, *sums = json.loads(line)
        rows = [dict(zip(COLUMNS, v, strict=True)) for v in values]
        for row, s in zip(rows, sums[0], strict=True) if sums else ():
            if s is not None:
                row[SUMS] = (int(s[0]), float(s[1]), float(s[2]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a journal line ({exc})") from None
    if not isinstance(key, str) or len(sums) > 1:
        raise ValueError("not a journal line (key)")
    return key, rows


class Journal:
    """Finished jobs of one stage, in job order: replayed on resume, then appended to.

    Call :meth:`take` for each job in plan order: it returns the recorded rows while the journal
    has them, then None (run the job and :meth:`append` its rows). A last line cut short by a
    kill is dropped when the journal is opened; any other unreadable line is an error.
    """

    def __init__(self, path: Path):
        self.path = path
        self._reader = self._complete_lines() if path.exists() else iter(())
        self._replaying = True
        self._fh: BinaryIO | None = None
        self.appended = self._replayed = 0

    def _complete_lines(self) -> Iterator[bytes]:
        good = 0
        with open(self.path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    break  # the line a kill cut short: dropped, its job runs again
                try:
                    _decode(line)
                except ValueError as exc:
                    raise ResumeError(f"{self.path}: line {number}: {exc}; use --force to start again") from None
                good += len(line)
        with open(self.path, "r+b") as fh:
            fh.truncate(good)
        return self._lines()

    def _lines(self) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            yield from fh

    def take(self, key: str) -> list[Row] | None:
        """The recorded rows of job ``key``, or None once the journal has no more jobs."""
        if not self._replaying:
            return None
        line = next(self._reader, None)
        if line is None:
            self._replaying = False
            return None
        got, rows = _decode(line)
        self._replayed += 1
        if got != key:
            raise ResumeError(
                f"{self.path}: records job {got!r} where the plan has {key!r}; the interrupted build "
                "did not make this plan; use --force to start again"
            )
        return rows

    def append(self, key: str, rows: list[Row]) -> None:
        """Record a finished job (its files are already in place)."""
        if self._fh is None:
            self._replaying = False
            self._fh = open(self.path, "ab")  # noqa: SIM115  (kept open across appends; closed by close())
        self._fh.write(_encode(key, rows))
        self._fh.flush()
        self.appended += 1
        kill_point(self.path.stem, self.appended + self._replayed)

    def rows(self) -> Iterator[Row]:
        """Every recorded row, in job order (read from disk, not held in memory)."""
        self.close()
        if self.path.exists():
            for line in self._lines():
                yield from _decode(line)[1]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def kill_point(point: str, done: int) -> None:
    """For tests only, the one hook of :data:`KILL_AFTER_ENV`: SIGKILL this process group when it
    names ``point`` and ``done`` has reached its count (a journal's jobs, the scan's ids)."""
    name, _, count = os.environ.get(KILL_AFTER_ENV, "").partition(":")
    if name == point and count.isdigit() and done >= int(count):
        os.killpg(os.getpgrp(), signal.SIGKILL)


def run_recorded(
    fn: Callable[..., list[Row]], jobs: Sequence[Any], keys: Sequence[str], journal: Journal,
    n_jobs: int, label: str, progress: Progress, *args: Any,
) -> Iterator[list[Row]]:
    """Yield each job's rows in job order: recorded ones from ``journal``, the others run in
    workers and recorded as they come back."""
    done = 0
    for key in keys:
        rows = journal.take(key)
        if rows is None:
            break
        done += 1
        yield rows
    for key, rows in zip(keys[done:], run_jobs(fn, jobs[done:], n_jobs, label, progress, *args)):
        journal.append(key, rows)
        yield rows
