"""The state of a run in its output, in one place: the record of an unfinished build
(``OUT/.sirst-synth-partial/run.json``, the only module that reads or writes it), and whether a run
starts fresh, resumes an interrupted build, or finds its output complete (:func:`decide`).

``run.json`` holds what is being built (the command, its parameters, the source's fingerprint) and
is written before any image; a finished dataset records the same in its ``sirst-synth.json``.
``--resume`` continues only the same run: a different command, parameter or source is refused
with one line naming what differs. The rest of the state folder (the journals, the noise bank) is
described in :mod:`sirst_synth.run.journal`.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sirst_synth.errors import ResumeError
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import checked_split_fingerprint
from sirst_synth.store.imageio import write_atomic
from sirst_synth.store.layout import INFO_NAME, state_dir
from sirst_synth.store.record import read_record

RUN_NAME = "run.json"


class RunMode(StrEnum):
    """How a run starts in its output (:func:`decide`)."""

    FRESH = "fresh"        #: cleared (files of this tool only) and marked as started
    RESUMED = "resumed"    #: the interrupted run of the same parameters, its temporary files dropped
    COMPLETE = "complete"  #: with ``--resume``, a finished dataset of the same run: nothing to do


@dataclass(frozen=True)
class RunRecord:
    """What a run builds: its command, its parameters (the split included) and the fingerprint of
    its source (:meth:`sirst_synth.run.scan.ScanResult.fingerprint`; None before the source is read)."""

    command: str
    parameters: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    @classmethod
    def of_dataset(cls, record: dict[str, Any]) -> RunRecord:
        """The run a finished dataset's ``sirst-synth.json`` records."""
        source = record.get("source")
        return cls(str(record.get("command")), dict(record.get("parameters") or {}),
                   (source if isinstance(source, dict) else {}).get("fingerprint"))


def write_run(out: Path, run: RunRecord) -> None:
    """Create the state folder and record what is being built (before any image is written)."""
    folder = state_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"command": run.command, "parameters": run.parameters, "fingerprint": run.fingerprint},
                      indent=2, sort_keys=True)
    write_atomic(folder / RUN_NAME, (text + "\n").encode("utf-8"))


def read_run(out: Path) -> RunRecord | None:
    """The record of the interrupted build in ``out``, or None when it has none."""
    path = state_dir(out) / RUN_NAME
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ResumeError(f"{path}: unreadable build record ({exc}); use --force to start again") from None
    if not isinstance(run, dict) or not isinstance(run.get("parameters"), dict):
        raise ResumeError(f"{path}: not a build record; use --force to start again")
    return RunRecord(str(run.get("command")), run["parameters"], run.get("fingerprint"))


def interrupted_split(out: Path) -> str | None:
    """The split the interrupted build in ``out`` records, or None when its record is missing or
    unreadable (for deciding which files are the tool's, never for resuming)."""
    try:
        run = read_run(out)
    except ResumeError:
        return None
    split = run.parameters.get("split") if run is not None else None
    return split if isinstance(split, str) else None


def finished_record(out: Path) -> dict[str, Any] | None:
    """The ``sirst-synth.json`` of a complete dataset in ``out``, or None (none, or a build in progress)."""
    if state_dir(out).exists():
        return None
    return read_record(out, hint="use --force to rebuild")


def remove_state(out: Path) -> None:
    """Delete the state folder (the dataset is complete, or is being started afresh)."""
    shutil.rmtree(state_dir(out), ignore_errors=True)


def check_same_run(named: Path, before: RunRecord, now: RunRecord, where: str | Path) -> None:
    """Refuse to resume when the command, a parameter or the source of ``now`` differs from the run
    recorded in ``where``; messages name the output ``named``."""
    if before.command != now.command:
        raise ResumeError(f"{named}: holds an interrupted '{before.command}', not '{now.command}' ({where})")
    old, new = before.parameters, now.parameters
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ResumeError(
                f"{named}: --resume needs the parameters it was built with: {key} was {old.get(key)!r}, "
                f"now {new.get(key)!r} ({where}); pass the same options or use --force to start again"
            )
    if before.fingerprint != now.fingerprint:
        raise ResumeError(
            f"{named}: the source changed since it was built (fingerprint {str(before.fingerprint)[:12]} "
            f"-> {str(now.fingerprint)[:12]}); use --force to start again"
        )


def decide(out: Path, now: RunRecord, resume: bool, finished: dict[str, Any] | None = None,
           named: Path | None = None) -> RunMode:
    """How the run ``now`` starts in the folder ``out``: with ``resume``, COMPLETE when the output
    is the finished dataset of this run (``finished``: its record when kept elsewhere, such as an
    HDF5 file; else ``out``'s ``sirst-synth.json``), RESUMED when ``out`` holds its interrupted
    build; otherwise FRESH. A recorded run that differs is refused (:func:`check_same_run`), named
    as ``named`` (the output a user named, when ``out`` is a staging folder for it) when finished."""
    if not resume:
        return RunMode.FRESH
    done = finished if finished is not None else finished_record(out)
    if done is not None:
        check_same_run(named or out, RunRecord.of_dataset(done), now, where=f"its {INFO_NAME}")
        return RunMode.COMPLETE
    before = read_run(out)
    if before is None:
        return RunMode.FRESH
    check_same_run(out, before, now, where=state_dir(out) / RUN_NAME)
    return RunMode.RESUMED


def finished_unchanged(ds: Dataset, out: Path, now: RunRecord, finished: dict[str, Any] | None = None,
                       named: Path | None = None) -> bool:
    """``--resume`` on a finished output, answered without checking the source image by image:
    True when it is the run ``now`` (command and parameters; its fingerprint is computed here).

    The command and every parameter are compared first (refused at once when one differs), then
    the source fingerprint, from the split lists and the SHA-256 of every listed file (read, not
    decoded). False (the whole source is then checked as for any run, and a difference refused)
    when there is no finished dataset, the build left ids out (``--skip-invalid``: only the full
    check knows which), a list, id or file is unusable, or the fingerprint differs."""
    done = finished if finished is not None else finished_record(out)
    if done is None:
        return False
    before = RunRecord.of_dataset(done)
    check_same_run(named or out, before, RunRecord(now.command, now.parameters, before.fingerprint),
                   where=f"its {INFO_NAME}")
    skipped = (done.get("source") or {}).get("skipped_invalid")
    if skipped or not before.fingerprint:
        return False
    return checked_split_fingerprint(ds) == before.fingerprint
