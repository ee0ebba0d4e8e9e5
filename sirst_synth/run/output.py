"""Where a dataset stage writes, chosen once: an :class:`Output`.

- :class:`FolderOutput`: a dataset folder of PNG files (the DNANet layout); displace, negaug and a
  plain build.
- :class:`~sirst_synth.run.h5_output.H5FileOutput`: one HDF5 file (``build --format h5``).
- :class:`~sirst_synth.interop.build_layout.LayoutOutput`: a trainer's layout (``build --layout``).

An output runs the stage (:meth:`Output.run`: the file and layout outputs build a folder beside
their target, then write the target from it), gives the workers a sink
(:mod:`sirst_synth.run.sinks`) and takes the writing process's share of storing images
(:meth:`Output.add_original`, :meth:`Output.unit_done`). No job, scan or stage takes a format flag.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

from sirst_synth.errors import ResumeError
from sirst_synth.run.options import RunOptions, StageResult
from sirst_synth.run.sinks import PNG_FILES, ImageSink
from sirst_synth.run.state import RunMode
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.h5.stored import StoredImage
from sirst_synth.store.layout import UNITS_DIR, image_name, mask_name
from sirst_synth.store.manifest import Row


class FolderStage(Protocol):
    """A stage that builds a dataset folder (:class:`~sirst_synth.run.stages.base.DatasetStage`)."""

    def build_in(self, ds: Dataset, folder: Path, opts: RunOptions, output: Output,
                 finished: dict[str, Any] | None = None) -> StageResult: ...


class Output(ABC):
    """Where a dataset stage writes (see the module's docstring)."""

    #: the output a user named: what messages and the run's result name
    named: Path

    @property
    def sink(self) -> ImageSink:
        """How the stage's jobs store their images (PNG files here)."""
        return PNG_FILES

    @abstractmethod
    def run(self, stage: FolderStage, ds: Dataset, opts: RunOptions) -> StageResult:
        """Run ``stage`` on ``ds`` into this output (holding its lock throughout)."""

    def started(self, folder: Path, mode: RunMode) -> None:
        """Check the dataset folder a run starts, resumes or finds complete: a folder whose images
        are stored for an HDF5 file only (``build --format h5``'s staging folder) is refused."""
        if mode is not RunMode.FRESH and (folder / UNITS_DIR).is_dir():
            raise ResumeError(f"{folder}: holds a build --format h5 (its images are stored for the HDF5 file only, "
                              "not as PNG files); finish it with --format h5, or use --force to start again")

    def add_original(self, stored: StoredImage) -> None:
        """Store an original as the scan decoded it (outputs whose sink :attr:`stores_originals`)."""
        raise NotImplementedError(f"{type(self).__name__} copies the originals")

    def unit_done(self, folder: Path, rows: list[Row], kept: int) -> None:
        """After a build unit (run now, or replayed on ``--resume``): keep its first ``kept`` images
        (the count plan cuts the last unit), deleting the PNG files of the others."""
        for row in rows[kept:]:
            (folder / image_name(row["id"])).unlink(missing_ok=True)
            (folder / mask_name(row["id"])).unlink(missing_ok=True)

    def space_needed(self, copies: int, generated: int) -> int:
        """Bytes the run writes for ``copies`` bytes of copied sources and ``generated`` bytes of new images."""
        return copies + generated


class FolderOutput(Output):
    """A dataset folder of PNG files, written in place."""

    def __init__(self, path: Path) -> None:
        self.named = Path(path)

    def run(self, stage: FolderStage, ds: Dataset, opts: RunOptions) -> StageResult:
        return stage.build_in(ds, self.named, opts, self)
