"""The stage interface, and the skeleton every stage that writes a dataset folder shares.

A stage is one command of the method (sample-noise, displace, negaug, build): it checks its
parameters and its source before anything is written, plans every job up front, runs the jobs
in workers, and completes its output. To add one, subclass :class:`DatasetStage` (a stage that
writes a dataset) or :class:`Stage` (anything else) in a module of this package, and give it a
CLI command in :mod:`sirst_synth.cli.data`; CONTRIBUTING.md, "Adding a stage", shows an example.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sirst_synth import __version__
from sirst_synth.errors import PlanError, SirstSynthError, SourceProblems
from sirst_synth.run.jobs import CopyJob, Place, recorded_copy, run_copy
from sirst_synth.run.journal import Journal, check_same_run, run_recorded
from sirst_synth.run.lock import check_not_running, command_line, locked_folder
from sirst_synth.run.output import (
    RunMode,
    check_output,
    completed_run,
    finish_output,
    make_folder,
    remove_scratch,
    start_output,
    train_norm,
)
from sirst_synth.run.scan import ScanResult, odd_mask_warnings, scan
from sirst_synth.run.space import SourceSizes, check_space, source_sizes, used_by
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import checked_split_fingerprint
from sirst_synth.store.layout import PACKED_DIR, PARTS, PIXEL_FOLDERS, flat_name, flat_names, scratch_dir, state_dir
from sirst_synth.store.manifest import Row, original_row
from sirst_synth.store.record import append_run

log = logging.getLogger("sirst_synth")


@dataclass(frozen=True)
class RunOptions:
    """How to run, not what to compute: outputs never depend on these."""

    n_jobs: int = -1
    progress: bool = False
    skip_invalid: bool = False
    force: bool = False
    resume: bool = False


@dataclass
class Sources:
    """A checked source: the scan's valid records, and the ids left out with ``--skip-invalid``."""

    result: ScanResult
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def train(self) -> list[Any]:
        return self.result.records["train"]

    def ids(self) -> set[str]:
        """Every valid id of every part read."""
        return {r.id for records in self.result.records.values() for r in records}


class Stage(ABC):
    """One command of the method: ``run`` it on a source dataset to write ``out``."""

    #: the command's name, recorded in ``sirst-synth.json``
    name: ClassVar[str]

    @abstractmethod
    def run(self, ds: Dataset, out: Path, opts: RunOptions) -> dict[str, Any]:
        """Write the stage's output; return its summary (counts, seconds, ...)."""


def check_sources(result: ScanResult, opts: RunOptions) -> Sources:
    """Raise on bad ids unless they may be skipped; warn about odd masks."""
    if result.problems and (not opts.skip_invalid or not result.records):
        raise SourceProblems(result.problems, skippable=bool(result.records))
    if not result.records["train"]:
        raise PlanError(f"no valid train image left after skipping {len(result.problems)} bad id(s)")
    for line in odd_mask_warnings(result):
        log.warning(line)
    return Sources(result, [{"id": p.id, "split": p.part, "problem": p.message} for p in result.problems])


class DatasetStage(Stage):
    """A stage that copies its source dataset into ``out`` and adds generated training images
    (``build --format h5`` records the originals' rows only: see :meth:`copies_originals`).

    :meth:`run` is the skeleton: refuse an unsafe output, answer ``--resume`` on a finished one at
    once (:meth:`finished_unchanged`), check the free space, check the source and plan
    (:meth:`prepare`), start or resume the output, copy every source image, run the stage's own
    jobs (:meth:`train_rows`) and write the closing files. A subclass supplies the parts in between.
    """

    #: the output's scratch folder (:func:`~sirst_synth.store.layout.scratch_dir`), set by :meth:`run`:
    #: where :meth:`prepare` may write (:meth:`make_scratch`) before the output is started, kept when
    #: ``--force`` clears the output, and removed (with what a killed run left there) by every run
    scratch: Path | None = None
    #: the output a user named, when the stage writes a staging folder for it (``build --format h5``,
    #: ``--layout``): messages about the output as a whole name it
    named_out: Path | None = None

    def run(self, ds: Dataset, out: Path, opts: RunOptions, completed: dict[str, Any] | None = None) -> dict[str, Any]:
        """``completed``: the record of a finished copy kept elsewhere (see :mod:`.build_h5`).

        Holds the output's lock (:mod:`sirst_synth.run.lock`) from before the source is read to the end."""
        start = time.perf_counter()
        ds = dataclasses.replace(ds, root=ds.root.resolve())  # workers elsewhere (a cluster) reach it by path
        self.params.validate()
        check_unlocked_output(out, ds.root, opts)
        with locked_folder(out):
            return self._run_locked(ds, out, opts, completed, start)

    def _run_locked(self, ds: Dataset, out: Path, opts: RunOptions, completed: dict[str, Any] | None,
                    start: float) -> dict[str, Any]:
        self.scratch = scratch_dir(out)
        try:
            # a finished folder whose originals live elsewhere (build --format h5's staging folder, its
            # file lost) needs the source scan, which hands them over: no shortcut there
            shortcut = completed is not None or self.copies_originals()
            if opts.resume and shortcut and self.finished_unchanged(ds, out, completed):
                return already_complete(out, completed, start)
            remove_scratch(out)  # what a run killed while checking its source left
            need = self._check_space(ds, out, opts)
            sources = self.prepare(ds, opts)
            flat_names(sorted(sources.ids()))  # two ids with one flat name: refused before writing
            check_space(out, need, f"this {self.name}", self.named_out)  # again: the scan's files take room now
            record = {"command": self.name, "parameters": {"split": ds.split, **self.record_params()},
                      "fingerprint": sources.result.fingerprint()}
            how = start_output(out, ds.root, ds.split, record, opts.force, opts.resume, completed, keep=self.scratch)
            self.started(out, how)
            if how is RunMode.COMPLETE:
                return already_complete(out, completed, start)
            bank = self.place_bank(out)
        finally:
            self.cleanup()
            remove_scratch(out)
        place = Place(ds, out.resolve(), bank)
        copies = run_copies(copy_jobs(ds, sources.result), place, opts, self.copies_originals())
        rows = chain(self.train_rows(sources, place, copies, opts), copied(copies, "test"))
        return finish(out, ds, sources, rows, record, self.extra_info(), start, how, opts.n_jobs)

    #: the stage's parameters (a dataclass of :mod:`sirst_synth.plan.params`)
    params: Any

    def finished_unchanged(self, ds: Dataset, out: Path, completed: dict[str, Any] | None) -> bool:
        """``--resume`` on a finished output (``completed``: its record kept elsewhere, else ``out``'s
        ``sirst-synth.json``): True when it is this run's, so there is nothing to do, without
        checking the source image by image. Checked: the command and every parameter (refused at
        once when one differs), then the source fingerprint, computed from the split lists and the
        SHA-256 of every listed file (read, not decoded). False (the whole source is then checked
        as for any run, and a difference refused as before) when the build left ids out
        (``--skip-invalid``: only the full check knows which), or a list, id or file is unusable, or
        the fingerprint differs."""
        done = completed if completed is not None else completed_run(out)
        if done is None:
            return False
        recorded = done.get("source")
        source: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        before = {"command": done.get("command"), "parameters": done.get("parameters", {}),
                  "fingerprint": source.get("fingerprint")}
        now = {"command": self.name, "parameters": {"split": ds.split, **self.record_params()},
               "fingerprint": before["fingerprint"]}
        check_same_run(out, before, now, where="its sirst-synth.json")
        if source.get("skipped_invalid") or not before["fingerprint"]:
            return False
        if checked_split_fingerprint(ds) != before["fingerprint"]:
            return False
        self.started(out, RunMode.COMPLETE)
        return True

    def make_scratch(self) -> Path:
        """Create :attr:`scratch` (for :meth:`prepare`) and return it."""
        assert self.scratch is not None
        make_folder(self.scratch)
        return self.scratch

    def space_needed(self, sizes: SourceSizes) -> int:
        """Bytes the run writes in its output, estimated from the source's file sizes (each copy
        as its file, each generated image as a mean train image with its mask)."""
        copies = sizes.total if self.copies_originals() else 0
        return copies + self.planned_images(sizes.ids.get("train", 0)) * sizes.train_pair

    def planned_images(self, train: int) -> int:
        """How many images the stage generates from ``train`` train images (0 when the plan needs the source)."""
        return 0

    def _check_space(self, ds: Dataset, out: Path, opts: RunOptions) -> int:
        """Refuse to start without the space :meth:`space_needed` estimates (less what an earlier run
        wrote that this one keeps or replaces); return the bytes needed."""
        need = max(self.space_needed(source_sizes(ds)) - used_by([out / f for f in (*PIXEL_FOLDERS, PACKED_DIR)]), 0)
        check_space(out, need, f"this {self.name}", self.named_out)
        return need

    @abstractmethod
    def prepare(self, ds: Dataset, opts: RunOptions) -> Sources:
        """Scan and check the source, check the plan against it; write nothing in the output but in
        :attr:`scratch` (:meth:`make_scratch`)."""

    def record_params(self) -> dict[str, Any]:
        """The parameters recorded in ``sirst-synth.json`` (and compared on ``--resume``)."""
        return dict(self.params.record())

    def place_bank(self, out: Path) -> str | None:
        """Put what workers read besides the source (a noise bank) in place; return its path."""
        return None

    def cleanup(self) -> None:
        """Release what :meth:`prepare` holds (its :attr:`scratch` folder is removed by :meth:`run`)."""

    def started(self, out: Path, how: RunMode) -> None:
        """Check (or mark) what the stage needs of the output it starts, resumes or finds complete."""

    def copies_originals(self) -> bool:
        """Whether the source images are copied into the output folder (else only their rows are
        recorded: an output that keeps them elsewhere)."""
        return True

    @abstractmethod
    def train_rows(self, sources: Sources, place: Place, copies: Journal, opts: RunOptions) -> Iterable[Row]:
        """Run the stage's jobs; return every train row of the output, in order."""

    def extra_info(self) -> dict[str, Any]:
        """More fields for ``sirst-synth.json``."""
        return {}


def check_unlocked_output(out: Path, src: Path, opts: RunOptions) -> None:
    """:func:`check_output`, refusing first an output a running command holds (naming it)."""
    check_not_running(out)
    try:
        check_output(out, src, opts.force, opts.resume)
    except SirstSynthError:
        check_not_running(out)  # it may have started since: name it rather than its files
        raise


def scan_sources(ds: Dataset, opts: RunOptions) -> Sources:
    """Check every id of both parts (no noise sampling)."""
    return check_sources(scan(ds, PARTS, opts.n_jobs, opts.progress), opts)


def copy_jobs(ds: Dataset, result: ScanResult) -> list[CopyJob]:
    """Copy jobs for every valid id, keeping the source's manifest rows when it has them. An id with
    folder parts is copied under its flat name (:func:`flat_name`), ``source_id`` keeping it."""
    manifest = ds.manifest() or {}
    jobs = []
    for part in PARTS:
        for rec in result.records.get(part, []):
            row = manifest.get(rec.id) or {**original_row(flat_name(rec.id), part), "source_id": rec.id}
            jobs.append(CopyJob(rec.id, {**row, "split": part}, rec.gray_sums, rec.sha256_image, rec.sha256_mask))
    return jobs


def run_copies(jobs: list[CopyJob], place: Place, opts: RunOptions, files: bool = True) -> Journal:
    """Copy every source id (recorded in the ``copies`` journal); return the journal. ``files=False``
    records the rows only (:func:`~sirst_synth.run.jobs.recorded_copy`, in this process)."""
    journal = Journal(state_dir(place.out) / "copies.jsonl")
    keys = [f"{job.row['split']}/{job.id}" for job in jobs]
    fn, n_jobs = (run_copy, opts.n_jobs) if files else (recorded_copy, 1)
    for _ in run_recorded(fn, jobs, keys, journal, n_jobs, "copying", opts.progress, place):
        pass
    journal.close()
    return journal


def copied(copies: Journal, part: str) -> Iterator[Row]:
    """The copied rows of ``part``, in split order, streamed from the journal."""
    return (row for row in copies.rows() if row["split"] == part)


def chain(*parts: Iterable[Row]) -> Iterator[Row]:
    for part in parts:
        yield from part


def source_info(ds: Dataset, sources: Sources) -> dict[str, Any]:
    result = sources.result
    return {
        "path": str(ds.root.resolve()), "split": ds.split, "train_list": ds.train_list,
        "test_list": ds.test_list, "fingerprint": result.fingerprint(),
        "train": len(result.records.get("train", [])), "test": len(result.records.get("test", [])),
        "skipped_invalid": sources.skipped,
    }


def already_complete(out: Path, info: dict[str, Any] | None = None, start: float | None = None) -> dict[str, Any]:
    """The summary of a run that found its output finished (``start``: when it began, for its seconds)."""
    info = info or completed_run(out) or {}
    seconds = round(time.perf_counter() - start, 3) if start is not None else 0.0
    return {"out": str(out), **info.get("counts", {}), "skipped": len(info.get("source", {}).get("skipped_invalid", [])),
            "seconds": seconds, "resumed": RunMode.COMPLETE.value}


def finish(out: Path, ds: Dataset, sources: Sources, rows: Iterable[Row], record: dict[str, Any],
           extra: dict[str, Any], start: float, how: RunMode, n_jobs: int = 1) -> dict[str, Any]:
    """Write the closing files (``sirst-synth.json`` holds nothing that differs between identical
    runs), then append this run's mode and seconds to the run log."""
    info = {"command": record["command"], "parameters": record["parameters"], **extra,
            "source": source_info(ds, sources)}
    counts = finish_output(out, ds.split, rows, info, lambda train: train_norm(out, train, n_jobs))
    seconds = round(time.perf_counter() - start, 3)
    append_run(out, {"command": record["command"], "mode": how.value, "seconds": seconds,
                     "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": __version__,
                     "argv": command_line()})
    return {"out": str(out), **counts, "skipped": len(sources.skipped), "seconds": seconds, "resumed": how.value}
