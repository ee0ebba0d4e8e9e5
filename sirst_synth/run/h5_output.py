"""``build --format h5``: the build written as one HDF5 file (docs/output.md, "The HDF5 file").

The build is made (or resumed) in the folder ``OUT.building/``, and the file is written as it
goes (:class:`~sirst_synth.store.h5.writer.H5Writer`, in scan order then plan order, so any number
of workers gives the same bytes): the scan hands over every original as stored in the file (the
folder gets their manifest rows, not copies), and each unit stores its images in one file of the
folder (:data:`~sirst_synth.run.sinks.UNIT_FILES`) instead of PNG files, which the writing
process adds; ``--resume`` adds the units of an earlier run from their files at their place in
that order. The file is renamed into place when complete, then the folder removed. ``--resume``
on a finished file checks its recorded parameters and source like a folder's.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from sirst_synth.errors import OutputError
from sirst_synth.run.folder import check_output_file, finished, make_folder
from sirst_synth.run.lock import check_not_running, locked_beside
from sirst_synth.run.options import RunOptions, StageResult
from sirst_synth.run.output import FolderStage, Output
from sirst_synth.run.pack import store_in_workers
from sirst_synth.run.sinks import PNG_FILES, UNIT_FILES, ImageSink
from sirst_synth.run.state import RunMode
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.h5.stored import StoredImage
from sirst_synth.store.h5.units import unit_images
from sirst_synth.store.h5.writer import H5Writer
from sirst_synth.store.layout import KINDS, UNITS_DIR, temp_files
from sirst_synth.store.manifest import Row


def _finished(out: Path) -> bool:
    """Whether ``out`` is a finished ``build --format h5`` (an HDF5 file with its record)."""
    import h5py

    try:
        with h5py.File(out, "r") as f:
            return "info" in f.attrs
    except (OSError, ValueError):
        return False


class H5FileOutput(Output):
    """One HDF5 file, built through the folder ``OUT.building/`` (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.named = Path(path)
        self.staging = self.named.with_name(self.named.name + ".building")
        #: the file being written (None while only a finished file's record is checked)
        self._writer: H5Writer | None = None

    @property
    def sink(self) -> ImageSink:
        """Unit files while the file is written; PNG files (nothing is stored) while only a finished
        file's record is checked."""
        return UNIT_FILES if self._writer is not None else PNG_FILES

    def run(self, stage: FolderStage, ds: Dataset, opts: RunOptions) -> StageResult:
        """Hold the lock beside the file (``.OUT.sirst-synth-lock``) through the build and the file."""
        check_not_running(self.named)
        with locked_beside(self.named):
            if opts.resume and self.named.is_file() and not self.staging.exists():
                from sirst_synth.store.h5.reader import H5Dataset

                return stage.build_in(ds, self.staging, opts, self, H5Dataset(self.named).info())
            if self.named.is_file() and not (opts.force or opts.resume) and _finished(self.named):
                raise OutputError(f"{self.named}: {finished(folder=False)}")
            check_output_file(self.named, ds.root, opts.force or opts.resume, owned_only=True)
            return self._write(stage, ds, opts)

    def _write(self, stage: FolderStage, ds: Dataset, opts: RunOptions) -> StageResult:
        """Build in the staging folder while the file is written, complete the file, drop the folder."""
        for tmp in temp_files(self.named.parent, self.named.name):  # a file cut short
            tmp.unlink(missing_ok=True)
        self._writer = writer = H5Writer(self.named)
        try:
            result = stage.build_in(ds, self.staging, opts, self)
            start = time.perf_counter()
            if result.mode is RunMode.COMPLETE:  # a run stopped after its folder was complete, before its file
                self._add_generated(ds.split)
            writer.finish(self.staging, ds.split, lambda files: store_in_workers(files, opts.n_jobs, opts.progress))
        except BaseException:
            writer.abort()
            raise
        finally:
            self._writer = None
        shutil.rmtree(self.staging)
        mode = RunMode.RESUMED if result.mode is RunMode.COMPLETE else result.mode
        return dataclasses.replace(result, mode=mode, seconds=round(result.seconds + time.perf_counter() - start, 3))

    def _add_generated(self, split: str) -> None:
        """Add the generated images of the complete staging folder that are not in the file, unit by
        unit in manifest order."""
        assert self._writer is not None
        units: dict[str, list[Row]] = {}  # a unit's rows are consecutive, units in plan order
        for id_, row in (Dataset(self.staging, split).manifest() or {}).items():
            if row["kind"] in KINDS[1:] and not self._writer.has(id_):
                units.setdefault(row["group"], []).append(row)
        for rows in units.values():
            for stored in unit_images(self.staging, rows):
                self._writer.add(stored)

    def started(self, folder: Path, mode: RunMode) -> None:
        """The staging folder holds its units' files (:data:`UNITS_DIR`, made when the file is written)."""
        if self._writer is not None:
            make_folder(folder / UNITS_DIR)

    def add_original(self, stored: StoredImage) -> None:
        assert self._writer is not None
        self._writer.add(stored)

    def unit_done(self, folder: Path, rows: list[Row], kept: int) -> None:
        """Add the unit's first ``kept`` images to the file, from its unit file."""
        assert self._writer is not None
        if kept > 0:
            for stored in unit_images(folder, rows[:kept]):
                self._writer.add(stored)

    def space_needed(self, copies: int, generated: int) -> int:
        """The generated images twice: their units' files in the staging folder and the file itself."""
        return copies + 2 * generated
