"""``build --layout FORMAT``: the build written directly in the layout another trainer reads.

The DNANet-layout build is made (or resumed) in the folder ``OUT.building/`` exactly as a plain
``build``, then exported as ``FORMAT`` into ``OUT`` (hard links, written in a temporary folder and
renamed into place), with the build's ``sirst-synth.json`` and ``manifest.csv`` at ``OUT``'s top,
then ``OUT.building/`` is removed. ``--resume`` finishes whichever step was cut short; on a
finished ``OUT`` it checks the recorded parameters and source like a folder's. The lock beside
``OUT`` (``.OUT.sirst-synth-lock``) is held throughout.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sirst_synth.errors import OutputError, ResumeError
from sirst_synth.interop.exporters import EXPORTERS, check_name, export_dataset
from sirst_synth.interop.exporters import RECORD as EXPORT_RECORD
from sirst_synth.plan.params import BuildParams
from sirst_synth.run.lock import check_not_running, locked_beside
from sirst_synth.run.output import RunMode
from sirst_synth.run.stages.base import RunOptions
from sirst_synth.run.stages.build_h5 import build_in_staging
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.imageio import read_bytes, write_atomic
from sirst_synth.store.layout import INFO_NAME, MANIFEST_NAME, RUN_LOG_NAME
from sirst_synth.store.record import read_record

#: the layouts ``build --layout`` writes (``dnanet`` is a plain build)
LAYOUTS = ("dnanet", *sorted(f for f in EXPORTERS if f != "dnanet"))


@dataclass
class BuildLayout:
    """:class:`Build` into ``OUT.building/``, exported as ``layout`` into ``OUT``."""

    layout: str
    params: BuildParams = field(default_factory=BuildParams)
    name: str | None = None

    def run(self, ds: Dataset, out: Path, opts: RunOptions) -> dict[str, Any]:
        if self.layout not in EXPORTERS:
            raise OutputError(f"--layout {self.layout!r}: unknown; one of {', '.join(LAYOUTS)}")
        check_name(self.dataset_name(out))
        check_not_running(out)
        with locked_beside(out):
            return self._run_locked(ds, out, opts)

    def dataset_name(self, out: Path) -> str:
        """The dataset's name in layouts that use one (basicirstd: ``OUT/<name>/``): ``--name``, else OUT's."""
        return self.name or out.resolve().name

    def _check_same_layout(self, out: Path) -> None:
        """Refuse ``--resume`` on a finished OUT of another layout (its export record says which)."""
        try:
            written = json.loads((out / EXPORT_RECORD).read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            written = None
        if written != self.layout:
            raise ResumeError(f"{out}: --resume needs the layout it was built with: {written or 'unknown'}, now "
                              f"{self.layout}; pass the same --layout or use --force to start again")

    def _run_locked(self, ds: Dataset, out: Path, opts: RunOptions) -> dict[str, Any]:
        from sirst_synth.interop.staging import check_output

        staging = out.with_name(out.name + ".building")
        completed = read_record(out, hint="use --force to rebuild") if opts.resume and out.is_dir() else None
        if completed is not None:
            self._check_same_layout(out)
        if completed is None:
            check_output(out, ds.root, opts.force or (opts.resume and staging.is_dir()))
        elif staging.exists():
            shutil.rmtree(staging)  # left by a run killed while removing it
        summary = build_in_staging(self.params, ds, staging, out, opts, completed)
        if summary["resumed"] == RunMode.COMPLETE:
            return {**summary, "out": str(out)}
        start = time.perf_counter()
        export_dataset(Dataset(staging, ds.split), self.layout, out, self.dataset_name(out), copy=False, force=True)
        for name in (MANIFEST_NAME, RUN_LOG_NAME, INFO_NAME):  # the record last: it marks OUT complete
            if (staging / name).is_file():
                write_atomic(out / name, read_bytes(staging / name))
        shutil.rmtree(staging)
        return {**summary, "out": str(out), "seconds": round(summary["seconds"] + time.perf_counter() - start, 3)}
