"""``build``: the whole SIRST-5K build (docs/method.md section 5): noise bank, then rounds of
displacement + negatives in plan order, cut to exactly ``total`` training images."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import ClassVar

from sirst_synth.errors import PlanError
from sirst_synth.method.negatives import max_negatives
from sirst_synth.plan.draws import NoiseDrawer
from sirst_synth.plan.ids import build_id_clashes, displaced_id, refuse_clashes
from sirst_synth.plan.params import BuildParams
from sirst_synth.plan.units import next_batch, plan_units
from sirst_synth.run.jobs import NoiseDraw, Place, run_job, write_displaced, write_negatives
from sirst_synth.run.journal import Journal, run_recorded
from sirst_synth.run.options import RunOptions
from sirst_synth.run.stages.base import DatasetStage, Sources, chain, copied
from sirst_synth.run.stages.displace import DisplaceJob
from sirst_synth.run.stages.negaug import check_window
from sirst_synth.run.stages.sample_noise import check_and_sample
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import PARTS, flat_name, state_dir
from sirst_synth.store.manifest import Row, new_row
from sirst_synth.store.noisebank import RawBankWriter, open_bank, raw_pixels_path

#: the build's own noise bank: its JSON index (the pixels: ``noise-bank.bin`` beside it)
BANK_NAME = "noise-bank.json"

log = logging.getLogger("sirst_synth")


@dataclass(frozen=True)
class BuildJob(DisplaceJob):
    """One unit of the build: displace train image ``input_id`` as ``out_id`` (a
    :class:`~sirst_synth.run.stages.displace.DisplaceJob`), then write the negatives of the
    displaced image with windows of side ``s``, all stored as one unit (its group, ``out_id``)."""

    s: int = 3

    def run(self, place: Place) -> list[Row]:
        unit = place.sink.unit(place.out, self.out_id)
        base = write_displaced(place, unit, self.input_id, self.out_id, self.row, self.noise, self.alpha, self.fit,
                               self.channels)
        rows = [base.row, *write_negatives(unit, base, self.s, self.channels)]
        unit.close()
        return rows


@dataclass
class Build(DatasetStage):
    """Sample the noise bank while checking the source, then generate ``total - originals`` images.

    The bank (raw pixels and a JSON index, not HDF5: :class:`~sirst_synth.store.noisebank.RawBankWriter`)
    is sampled in the output's scratch folder (:attr:`scratch`), then moved into its state folder,
    where workers (local or on a cluster) read it by path.
    """

    name: ClassVar[str] = "build"
    params: BuildParams = field(default_factory=BuildParams)

    def prepare(self, ds: Dataset, opts: RunOptions) -> Sources:
        p = self.params
        self.make_scratch()
        writer = RawBankWriter(self._scanned_bank, p.noise.record())
        sources = check_and_sample(ds, PARTS, writer, p.noise, opts, self.output)
        log.info("noise bank: %d patches from %d of %d train images", len(writer), writer.images_with_patches,
                 writer.images)
        check_window(p.s, sources.train)
        if p.total < len(sources.train):
            raise PlanError(f"--total {p.total} is smaller than the {len(sources.train)} original training images")
        self._check_plan(sources)
        return sources

    @property
    def _scanned_bank(self) -> Path:
        assert self.scratch is not None
        return self.scratch / BANK_NAME

    def _check_plan(self, sources: Sources) -> None:
        """Before anything is written: enough patches for the rounds needed, no id clash.

        Every unit yields at least one image, so ``ceil(needed / train images)`` rounds suffice.
        """
        train = sources.train
        rounds = -(-(self.params.total - len(train)) // len(train))
        with open_bank(self._scanned_bank) as bank:
            NoiseDrawer(bank.source_id, self.params.seed).check_capacity([r.id for r in train], rounds)
        refuse_clashes(build_id_clashes({flat_name(i) for i in sources.ids()},
                                        {flat_name(r.id): r.targets for r in train}, rounds))

    def place_bank(self, out: Path) -> str | None:
        """Move the bank from the scratch folder into the state folder (the same file system: two
        renames, the index last)."""
        bank_path = state_dir(out).resolve() / BANK_NAME
        os.replace(raw_pixels_path(self._scanned_bank), raw_pixels_path(bank_path))
        os.replace(self._scanned_bank, bank_path)
        return str(bank_path)

    def planned_images(self, train: int) -> int:
        return max(self.params.total - train, 0)

    def train_rows(self, sources: Sources, place: Place, copies: Journal, opts: RunOptions) -> Iterable[Row]:
        needed = self.params.total - len(sources.train)
        units = self._run_units(sources, place, needed, opts)
        return chain(copied(copies, "train"), islice(units.rows(), needed))

    def _run_units(self, sources: Sources, place: Place, needed: int, opts: RunOptions) -> Journal:
        """Run units in plan order, batch by batch, until exactly ``needed`` images are generated.

        Every unit's rows go to the ``units`` journal whole; the last unit is cut to fit (its extra
        files removed), so the dataset's generated rows are the journal's first ``needed`` rows.
        """
        p = self.params
        assert place.bank is not None
        with open_bank(place.bank) as bank:
            bank_sources, grid = bank.source_id, bank.grid
        drawer = NoiseDrawer(bank_sources, p.seed)
        max_sizes = {r.id: 1 + max_negatives(r.targets) for r in sources.train}
        units = plan_units([r.id for r in sources.train], p.seed)
        units_done = Journal(state_dir(place.out) / "units.jsonl")
        made = 0
        while made < needed:
            batch = next_batch(units, max_sizes, needed - made)
            log.info("batch of %d units from round %d for %d images still needed", len(batch), batch[0][0],
                     needed - made)
            jobs = []
            for round_, id_ in batch:
                idx = drawer.draw(id_, round_)
                draw = NoiseDraw(idx, bank_sources[idx], int(grid[idx][0]), int(grid[idx][1]))
                row = new_row(split="train", source_id=id_, round=round_)
                jobs.append(BuildJob(id_, displaced_id(flat_name(id_), round_), row, draw, p.alpha, p.fit,
                                     channels=p.channels, s=p.s))
            for unit_rows in run_recorded(run_job, jobs, [j.key for j in jobs], units_done, opts.n_jobs,
                                          "building", opts.progress, place):
                room = needed - made
                made += min(room, len(unit_rows))
                self.output.unit_done(place.out, unit_rows, room)  # whether run now or replayed on --resume
        units_done.close()
        return units_done
