"""``build --layout FORMAT``: the build written directly in the layout another trainer reads.

The folder written, ``D``, is what ``export --to FORMAT --name NAME -o OUT`` writes: ``OUT/NAME/``
for the formats with a dataset folder (dnanet, basicirstd, points: beside the datasets ``OUT``
holds), else ``OUT``. The DNANet-layout build is made (or resumed) in the folder ``D.building/``
exactly as a plain ``build`` (:class:`LayoutOutput` is the build's output), then exported as ``FORMAT`` into ``D`` (hard links, written in a
temporary folder and put in place), with the build's ``sirst-synth.json`` and ``manifest.csv`` at
``D``'s top, then ``D.building/`` is removed. ``--resume`` finishes whichever step was cut short; on
a finished ``D`` it checks the recorded parameters and source like a folder's. The lock beside
``D`` (``.D.sirst-synth-lock``) is held throughout.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sirst_synth.errors import OutputError, ResumeError
from sirst_synth.interop.exporters import EXPORTERS, check_name, export_dataset, export_target, target_hint
from sirst_synth.interop.exporters import RECORD as EXPORT_RECORD
from sirst_synth.interop.layouts import LAYOUTS
from sirst_synth.interop.staging import check_output
from sirst_synth.run.folder import finished
from sirst_synth.run.lock import check_not_running, locked_beside
from sirst_synth.run.options import RunOptions, StageResult
from sirst_synth.run.output import FolderStage, Output
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.imageio import read_bytes, write_atomic
from sirst_synth.store.layout import INFO_NAME, MANIFEST_NAME, RUN_LOG_NAME
from sirst_synth.store.record import read_record


class LayoutOutput(Output):
    """A build written in the layout ``layout`` (see the module's docstring): ``OUT/NAME/`` (``name``:
    ``--name``, else OUT's folder name) for the layouts with a dataset folder, else ``OUT``."""

    def __init__(self, layout: str, out: Path, name: str | None = None) -> None:
        if layout not in EXPORTERS:
            raise OutputError(f"--layout {layout!r}: unknown; one of {', '.join(LAYOUTS)}")
        self.layout, self.out = layout, Path(out)
        self.name = check_name(name or self.out.resolve().name)
        self.named = export_target(layout, self.out, self.name)
        self.staging = self.named.with_name(self.named.name + ".building")

    def run(self, stage: FolderStage, ds: Dataset, opts: RunOptions) -> StageResult:
        """Hold the lock beside the dataset folder (``.D.sirst-synth-lock``) through the build and the export."""
        check_not_running(self.named)
        with locked_beside(self.named):
            done = self._finished(ds, opts)
            result = stage.build_in(ds, self.staging, opts, self, done)
            return result if done is not None else self._export(result, ds, opts)

    def _finished(self, ds: Dataset, opts: RunOptions) -> dict[str, Any] | None:
        """With ``--resume``, the record of the finished dataset folder; otherwise refuse an unsafe one."""
        done = read_record(self.named, hint="use --force to rebuild") if opts.resume and self.named.is_dir() else None
        if done is not None:
            self._check_same_layout()
            if self.staging.exists():
                shutil.rmtree(self.staging)  # left by a run killed while removing it
            return done
        if not (opts.force or opts.resume) and (self.named / INFO_NAME).is_file():
            raise OutputError(f"{self.named}: {finished()}")
        force = opts.force or (opts.resume and self.staging.is_dir())
        check_output(self.named, ds.root, force, target_hint(self.layout))
        return None

    def _check_same_layout(self) -> None:
        """Refuse ``--resume`` on a finished folder of another layout (its export record says which)."""
        try:
            written = json.loads((self.named / EXPORT_RECORD).read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            written = None
        if written != self.layout:
            raise ResumeError(f"{self.named}: --resume needs the layout it was built with: {written or 'unknown'}, "
                              f"now {self.layout}; pass the same --layout or use --force to start again")

    def _export(self, result: StageResult, ds: Dataset, opts: RunOptions) -> StageResult:
        """Export the complete staging folder into the dataset folder, the build's records at its top, then drop it."""
        start = time.perf_counter()
        export_dataset(Dataset(self.staging, ds.split), self.layout, self.out, self.name, copy=False, force=True,
                       n_jobs=opts.n_jobs, progress=opts.progress)
        for file in (MANIFEST_NAME, RUN_LOG_NAME, INFO_NAME):  # the record last: it marks the folder complete
            if (self.staging / file).is_file():
                write_atomic(self.named / file, read_bytes(self.staging / file))
        shutil.rmtree(self.staging)
        return replace(result, seconds=round(result.seconds + time.perf_counter() - start, 3))
