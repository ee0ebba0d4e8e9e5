"""``sample-noise``: the noise-prone regions of the train images, into a noise bank (docs/method.md section 2)."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sirst_synth.errors import PlanError
from sirst_synth.plan.params import NoiseParams
from sirst_synth.run.folder import check_output_file, make_folder
from sirst_synth.run.lock import check_not_running, locked_beside
from sirst_synth.run.options import RunOptions
from sirst_synth.run.output import Output
from sirst_synth.run.scan import check_grid, scan
from sirst_synth.run.stages.base import Sources, Stage, check_sources
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.noisebank import NoiseBankWriter


def check_and_sample(ds: Dataset, parts: tuple[str, ...], writer: NoiseBankWriter, noise: NoiseParams,
                     opts: RunOptions, output: Output | None = None) -> Sources:
    """Check every id of ``parts`` and sample the train images' noise into ``writer`` (an HDF5 bank,
    or a build's own :class:`~sirst_synth.store.noisebank.RawBankWriter`), whose file appears only
    when the sources, the grid and the bank pass their checks; ``output``: the output that stores
    the originals as the scan decodes them (see :func:`~sirst_synth.run.scan.scan`)."""
    try:
        sources = check_sources(scan(ds, parts, opts.n_jobs, opts.progress, noise, writer, output), opts)
        problem = check_grid(sources.train, noise.grid)
        if problem:
            raise PlanError(problem)
        if len(writer) == 0:
            raise PlanError(
                f"no noise-prone region in {writer.images} train images with a {noise.grid}x{noise.grid} grid, "
                f"0 < var < {noise.max_var:g} and 0 < mean < {noise.max_mean:g}; "
                "relax the thresholds (raise --max-var or --max-mean) or change --grid"
            )
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return sources


@dataclass(frozen=True)
class NoiseResult:
    """What ``sample-noise`` wrote: the bank, its patches, the train images read and those that gave
    patches, the ids ``--skip-invalid`` left out, and the seconds it took."""

    out: Path
    patches: int
    images: int
    images_with_patches: int
    skipped: int
    seconds: float


@dataclass
class SampleNoise(Stage):
    """Write the noise bank of the train images of a dataset to one HDF5 file."""

    name: ClassVar[str] = "sample-noise"
    params: NoiseParams

    def run(self, ds: Dataset, out: Path, opts: RunOptions) -> NoiseResult:
        start = time.perf_counter()
        self.params.validate()
        check_not_running(out)
        check_output_file(out, ds.root, opts.force, owned_only=True)
        attrs = {"split": ds.split, "source": str(ds.root.resolve())}
        new_folder = next((p for p in [out.parent, *out.parent.parents] if p.parent.exists()), None)
        new_folder = new_folder if new_folder is not None and not new_folder.exists() else None
        make_folder(out.parent)
        try:
            with locked_beside(out):
                writer = NoiseBankWriter(out, {**self.params.record(), **attrs})
                sources = check_and_sample(ds, ("train",), writer, self.params, opts)
        except BaseException:
            if new_folder is not None:
                shutil.rmtree(new_folder, ignore_errors=True)  # created above, and left empty by the writer
            raise
        return NoiseResult(out, len(writer), writer.images, writer.images_with_patches, len(sources.skipped),
                           time.perf_counter() - start)
