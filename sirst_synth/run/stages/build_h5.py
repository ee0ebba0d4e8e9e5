"""``build --format h5``: the build written as one HDF5 file (docs/method.md section 6 and appendix 10).

The build is made (or resumed) in the folder ``OUT.building/``, and the file is written as it
goes (:class:`~sirst_synth.run.pack.H5Writer`, in scan order then plan order, so any number of
workers gives the same bytes): the scan hands over every original as stored in the file (the
folder gets their manifest rows, not copies), and each unit writes its images as stored chunks
in one file of the folder (:mod:`sirst_synth.run.packfile`) instead of PNG files, which the
writing process adds; ``--resume`` adds the units of an earlier run from their files at their
place in that order. The file is renamed into place when complete, then the folder removed.
``--resume`` on a finished file checks its recorded parameters and source like a folder's.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sirst_synth.errors import OutputError, ResumeError
from sirst_synth.plan.params import BuildParams
from sirst_synth.run.lock import check_not_running, locked_beside
from sirst_synth.run.output import RunMode, check_output_file, finished
from sirst_synth.run.pack import H5Writer
from sirst_synth.run.packfile import unit_images
from sirst_synth.run.stages.base import RunOptions, Stage
from sirst_synth.run.stages.build import Build
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import KINDS, temp_files
from sirst_synth.store.manifest import Row


def build_in_staging(params: BuildParams, ds: Dataset, staging: Path, out: Path, opts: RunOptions,
                     completed: dict[str, Any] | None, writer: H5Writer | None = None) -> dict[str, Any]:
    """Make (or resume) the PNG build of ``out`` in the folder ``staging``; ``completed``: the
    record of a finished ``out``; ``writer``: the HDF5 file that receives every image as it comes.
    Resume errors name ``out``, the output the user asked for."""
    stage = Build(params, writer=writer)
    stage.named_out = out
    try:
        return stage.run(ds, staging, opts, completed)
    except ResumeError as exc:
        if completed is None:
            raise
        raise ResumeError(str(exc).replace(str(staging), str(out))) from None


def add_generated(writer: H5Writer, staging: Path, split: str) -> None:
    """Add the generated images of the complete folder ``staging`` that are not in the file, unit
    by unit in manifest order (a run stopped after its folder was complete, before its file was)."""
    units: dict[str, list[Row]] = {}  # a unit's rows are consecutive, units in plan order
    for id_, row in (Dataset(staging, split).manifest() or {}).items():
        if row["kind"] in KINDS[1:] and not writer.has(id_):
            units.setdefault(row["group"], []).append(row)
    for rows in units.values():
        for packed in unit_images(staging, rows):
            writer.add(packed)


def _finished(out: Path) -> bool:
    """Whether ``out`` is a finished ``build --format h5`` (an HDF5 file with its record)."""
    import h5py

    try:
        with h5py.File(out, "r") as f:
            return "info" in f.attrs
    except (OSError, ValueError):
        return False


@dataclass
class BuildH5(Stage):
    """:class:`Build` into one HDF5 file."""

    name: ClassVar[str] = "build"
    params: BuildParams = field(default_factory=BuildParams)

    def run(self, ds: Dataset, out: Path, opts: RunOptions) -> dict[str, Any]:
        """Hold the lock beside ``out`` (``.OUT.sirst-synth-lock``) through the build and the pack."""
        check_not_running(out)
        with locked_beside(out):
            return self._run_locked(ds, out, opts)

    def _run_locked(self, ds: Dataset, out: Path, opts: RunOptions) -> dict[str, Any]:
        from sirst_synth.store.h5dataset import H5Dataset

        staging = out.with_name(out.name + ".building")
        completed = None
        if opts.resume and out.is_file() and not staging.exists():
            completed = H5Dataset(out).info()
        else:
            if out.is_file() and not (opts.force or opts.resume) and _finished(out):
                raise OutputError(f"{out}: {finished(folder=False)}")
            check_output_file(out, ds.root, opts.force or opts.resume, owned_only=True)
        if completed is not None:  # the finished file: only its record is checked
            return {**build_in_staging(self.params, ds, staging, out, opts, completed), "out": str(out)}
        for tmp in temp_files(out.parent, out.name):  # a file cut short
            tmp.unlink(missing_ok=True)
        writer = H5Writer(out)
        try:
            summary = build_in_staging(self.params, ds, staging, out, opts, None, writer)
            start = time.perf_counter()
            if summary["resumed"] == RunMode.COMPLETE:
                add_generated(writer, staging, ds.split)
            # a complete folder too (a run stopped before its file was renamed): the file is written from it
            writer.finish(staging, ds.split, progress=opts.progress, n_jobs=opts.n_jobs)
        except BaseException:
            writer.abort()
            raise
        shutil.rmtree(staging)
        if summary["resumed"] == RunMode.COMPLETE:
            summary["resumed"] = RunMode.RESUMED.value
        return {**summary, "out": str(out), "seconds": round(summary["seconds"] + time.perf_counter() - start, 3)}
