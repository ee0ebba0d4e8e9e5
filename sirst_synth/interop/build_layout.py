"""``build --layout FORMAT``: the build written directly in the layout another trainer reads.

The folder written, ``D``, is what ``export --to FORMAT --name NAME -o OUT`` writes: ``OUT/NAME/``
for the formats with a dataset folder (dnanet, basicirstd, points: beside the datasets ``OUT``
holds), else ``OUT``. The DNANet-layout build is made (or resumed) in the folder ``D.building/``
exactly as a plain ``build``, then exported as ``FORMAT`` into ``D`` (hard links, written in a
temporary folder and put in place), with the build's ``sirst-synth.json`` and ``manifest.csv`` at
``D``'s top, then ``D.building/`` is removed. ``--resume`` finishes whichever step was cut short; on
a finished ``D`` it checks the recorded parameters and source like a folder's. The lock beside
``D`` (``.D.sirst-synth-lock``) is held throughout.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sirst_synth.errors import OutputError, ResumeError
from sirst_synth.interop.exporters import EXPORTERS, check_name, export_dataset, export_target, target_hint
from sirst_synth.interop.exporters import RECORD as EXPORT_RECORD
from sirst_synth.interop.layouts import LAYOUTS
from sirst_synth.plan.params import BuildParams
from sirst_synth.run.lock import check_not_running, locked_beside
from sirst_synth.run.output import RunMode, finished
from sirst_synth.run.stages.base import RunOptions
from sirst_synth.run.stages.build_h5 import build_in_staging
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.imageio import read_bytes, write_atomic
from sirst_synth.store.layout import INFO_NAME, MANIFEST_NAME, RUN_LOG_NAME
from sirst_synth.store.record import read_record


@dataclass
class BuildLayout:
    """:class:`Build` into ``OUT.building/``, exported as ``layout`` into ``OUT``."""

    layout: str
    params: BuildParams = field(default_factory=BuildParams)
    name: str | None = None

    def run(self, ds: Dataset, out: Path, opts: RunOptions) -> dict[str, Any]:
        if self.layout not in EXPORTERS:
            raise OutputError(f"--layout {self.layout!r}: unknown; one of {', '.join(LAYOUTS)}")
        name = check_name(self.dataset_name(out))
        target = export_target(self.layout, out, name)
        check_not_running(target)
        with locked_beside(target):
            return self._run_locked(ds, out, target, name, opts)

    def dataset_name(self, out: Path) -> str:
        """The dataset's name in layouts that use one (basicirstd: ``OUT/<name>/``): ``--name``, else OUT's."""
        return self.name or out.resolve().name

    def _check_same_layout(self, target: Path) -> None:
        """Refuse ``--resume`` on a finished folder of another layout (its export record says which)."""
        try:
            written = json.loads((target / EXPORT_RECORD).read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            written = None
        if written != self.layout:
            raise ResumeError(f"{target}: --resume needs the layout it was built with: {written or 'unknown'}, now "
                              f"{self.layout}; pass the same --layout or use --force to start again")

    def _run_locked(self, ds: Dataset, out: Path, target: Path, name: str, opts: RunOptions) -> dict[str, Any]:
        from sirst_synth.interop.staging import check_output

        staging = target.with_name(target.name + ".building")
        completed = read_record(target, hint="use --force to rebuild") if opts.resume and target.is_dir() else None
        if completed is not None:
            self._check_same_layout(target)
        if completed is None:
            if not (opts.force or opts.resume) and (target / INFO_NAME).is_file():
                raise OutputError(f"{target}: {finished()}")
            check_output(target, ds.root, opts.force or (opts.resume and staging.is_dir()), target_hint(self.layout))
        elif staging.exists():
            shutil.rmtree(staging)  # left by a run killed while removing it
        summary = build_in_staging(self.params, ds, staging, target, opts, completed)
        if summary["resumed"] == RunMode.COMPLETE:
            return {**summary, "out": str(target)}
        start = time.perf_counter()
        export_dataset(Dataset(staging, ds.split), self.layout, out, name, copy=False, force=True,
                       n_jobs=opts.n_jobs, progress=opts.progress)
        for file in (MANIFEST_NAME, RUN_LOG_NAME, INFO_NAME):  # the record last: it marks the folder complete
            if (staging / file).is_file():
                write_atomic(target / file, read_bytes(staging / file))
        shutil.rmtree(staging)
        return {**summary, "out": str(target), "seconds": round(summary["seconds"] + time.perf_counter() - start, 3)}
