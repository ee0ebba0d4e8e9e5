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
from sirst_synth.run.folder import check_output, finish_output, make_folder, remove_scratch, start_folder, train_norm
from sirst_synth.run.jobs import CopyJob, Place, run_job
from sirst_synth.run.journal import Journal, run_recorded
from sirst_synth.run.lock import check_not_running, command_line, locked_folder
from sirst_synth.run.options import RunOptions, StageResult
from sirst_synth.run.output import FolderOutput, Output
from sirst_synth.run.scan import ScanResult, odd_mask_warnings, scan
from sirst_synth.run.space import SourceSizes, check_space, source_sizes, used_by
from sirst_synth.run.state import RunMode, RunRecord, finished_record, finished_unchanged
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import PARTS, PIXEL_FOLDERS, UNITS_DIR, flat_name, flat_names, scratch_dir, state_dir
from sirst_synth.store.manifest import Row, original_row
from sirst_synth.store.record import append_run

log = logging.getLogger("sirst_synth")


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
    def run(self, ds: Dataset, out: Path, opts: RunOptions) -> Any:
        """Write the stage's output; return its result (counts, seconds, ...)."""


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
    """A stage that copies its source dataset into its output and adds generated training images.

    :meth:`run` hands the stage to its :class:`~sirst_synth.run.output.Output`, which calls
    :meth:`build_in` on the dataset folder it builds in. :meth:`build_in` is the skeleton: refuse an
    unsafe folder, answer ``--resume`` on a finished one at once
    (:func:`~sirst_synth.run.state.finished_unchanged`), check the free space, check the source and
    plan (:meth:`prepare`), start or resume the folder (:func:`~sirst_synth.run.folder.start_folder`),
    copy every source image, run the stage's own jobs (:meth:`train_rows`) and write the closing
    files. A subclass supplies the parts in between.
    """

    #: the stage's parameters (a dataclass of :mod:`sirst_synth.plan.params`)
    params: Any
    #: the output's scratch folder (:func:`~sirst_synth.store.layout.scratch_dir`), set by :meth:`build_in`:
    #: where :meth:`prepare` may write (:meth:`make_scratch`) before the output is started, kept when
    #: ``--force`` clears the output, and removed (with what a killed run left there) by every run
    scratch: Path | None = None
    #: the output being written, set by :meth:`build_in` (stages that write unit by unit hand it each unit)
    output: Output = FolderOutput(Path("."))

    def run(self, ds: Dataset, out: Path | Output, opts: RunOptions) -> StageResult:
        """Write ``out``: a dataset folder, or any :class:`~sirst_synth.run.output.Output`."""
        self.params.validate()
        ds = dataclasses.replace(ds, root=ds.root.resolve())  # workers elsewhere (a cluster) reach it by path
        output = out if isinstance(out, Output) else FolderOutput(out)
        return output.run(self, ds, opts)

    def build_in(self, ds: Dataset, folder: Path, opts: RunOptions, output: Output,
                 finished: dict[str, Any] | None = None) -> StageResult:
        """Build (or resume) the dataset in ``folder`` for ``output``; ``finished``: the record of a
        finished output kept elsewhere (an HDF5 file), for ``--resume``. Holds the folder's lock
        (:mod:`sirst_synth.run.lock`) from before the source is read to the end."""
        start = time.perf_counter()
        self.output = output
        check_unlocked_output(folder, ds.root, opts)
        with locked_folder(folder):
            self.scratch = scratch_dir(folder)
            try:
                started = self._start(ds, folder, opts, finished)
            finally:
                self.cleanup()
                remove_scratch(folder)
            if started is None:
                return already_complete(output.named, finished or finished_record(folder), start)
            sources, run, mode, bank = started
            place = Place(ds, folder.resolve(), bank, output.sink)
            copies = run_copies(copy_jobs(ds, sources.result), place, opts)
            rows = chain(self.train_rows(sources, place, copies, opts), copied(copies, "test"))
            return finish(folder, output.named, ds, sources, rows, run, self.extra_info(), start, mode, opts.n_jobs)

    def _start(self, ds: Dataset, folder: Path, opts: RunOptions, finished: dict[str, Any] | None,
               ) -> tuple[Sources, RunRecord, RunMode, str | None] | None:
        """Check the space, the source and the plan, then start the folder; None when the output is
        complete (answered at once, without the source scan, when nothing changed)."""
        output = self.output
        # a folder whose originals are stored from the scan (build --format h5's staging folder, its
        # file lost) is answered only by the source scan, which stores them: no shortcut there
        if opts.resume and (finished is not None or not output.sink.stores_originals):
            now = RunRecord(self.name, {"split": ds.split, **self.record_params()})
            if finished_unchanged(ds, folder, now, finished, output.named):
                output.started(folder, RunMode.COMPLETE)
                return None
        remove_scratch(folder)  # what a run killed while checking its source left
        need = self._check_space(ds, folder)
        sources = self.prepare(ds, opts)
        flat_names(sorted(sources.ids()))  # two ids with one flat name: refused before writing
        check_space(folder, need, f"this {self.name}", output.named)  # again: the scan's files take room now
        run = RunRecord(self.name, {"split": ds.split, **self.record_params()}, sources.result.fingerprint())
        # the folder was checked before its lock was taken (check_unlocked_output); start_folder checks
        # it again under the lock, where nothing else can change it
        mode = start_folder(folder, ds.root, ds.split, run, opts.force, opts.resume, finished, self.scratch,
                            output.named)
        output.started(folder, mode)
        return None if mode is RunMode.COMPLETE else (sources, run, mode, self.place_bank(folder))

    def make_scratch(self) -> Path:
        """Create :attr:`scratch` (for :meth:`prepare`) and return it."""
        assert self.scratch is not None
        make_folder(self.scratch)
        return self.scratch

    def space_needed(self, sizes: SourceSizes) -> int:
        """Bytes the run writes in its output, estimated from the source's file sizes (each copy
        as its file, each generated image as a mean train image with its mask)."""
        generated = self.planned_images(sizes.ids.get("train", 0)) * sizes.train_pair
        return self.output.space_needed(sizes.total, generated)

    def planned_images(self, train: int) -> int:
        """How many images the stage generates from ``train`` train images (0 when the plan needs the source)."""
        return 0

    def _check_space(self, ds: Dataset, folder: Path) -> int:
        """Refuse to start without the space :meth:`space_needed` estimates (less what an earlier run
        wrote that this one keeps or replaces); return the bytes needed."""
        kept = used_by([folder / f for f in (*PIXEL_FOLDERS, UNITS_DIR)])
        need = max(self.space_needed(source_sizes(ds)) - kept, 0)
        check_space(folder, need, f"this {self.name}", self.output.named)
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
        """Release what :meth:`prepare` holds (its :attr:`scratch` folder is removed by :meth:`build_in`)."""

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


def run_copies(jobs: list[CopyJob], place: Place, opts: RunOptions) -> Journal:
    """Copy every source id through the output's sink (recorded in the ``copies`` journal); return the journal.
    A sink that stores the originals from the scan only records their rows: no file to read or write,
    so this process does it rather than shipping a job per id to the workers."""
    journal = Journal(state_dir(place.out) / "copies.jsonl")
    n_jobs = 1 if place.sink.stores_originals else opts.n_jobs
    for _ in run_recorded(run_job, jobs, [job.key for job in jobs], journal, n_jobs, "copying", opts.progress, place):
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


def already_complete(out: Path, record: dict[str, Any] | None, start: float) -> StageResult:
    """The result of a run that found its output finished (``record``: its ``sirst-synth.json``)."""
    record = record or {}
    skipped = len((record.get("source") or {}).get("skipped_invalid") or [])
    return StageResult.of(out, record.get("counts", {}), skipped, time.perf_counter() - start, RunMode.COMPLETE)


def finish(folder: Path, named: Path, ds: Dataset, sources: Sources, rows: Iterable[Row], run: RunRecord,
           extra: dict[str, Any], start: float, mode: RunMode, n_jobs: int = 1) -> StageResult:
    """Write the closing files (``sirst-synth.json`` holds nothing that differs between identical
    runs), then append this run's mode and seconds to the run log."""
    info = {"command": run.command, "parameters": run.parameters, **extra, "source": source_info(ds, sources)}
    counts = finish_output(folder, ds.split, rows, info, lambda train: train_norm(folder, train, n_jobs))
    seconds = round(time.perf_counter() - start, 3)
    append_run(folder, {"command": run.command, "mode": mode.value, "seconds": seconds,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": __version__,
                        "argv": command_line()})
    return StageResult.of(named, counts, len(sources.skipped), seconds, mode)
