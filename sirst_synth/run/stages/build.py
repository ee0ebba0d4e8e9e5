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

from sirst_synth.errors import PlanError, ResumeError
from sirst_synth.method.negatives import max_negatives
from sirst_synth.plan.draws import NoiseDrawer
from sirst_synth.plan.ids import build_id_clashes, displaced_id, refuse_clashes
from sirst_synth.plan.params import BuildParams
from sirst_synth.plan.units import next_batch, plan_units
from sirst_synth.run.jobs import NoiseDraw, Place, remove_outputs, run_job, write_displaced, write_negatives
from sirst_synth.run.journal import Journal, run_recorded
from sirst_synth.run.output import RunMode, make_folder
from sirst_synth.run.pack import H5Writer, packed_written
from sirst_synth.run.packfile import unit_images, write_unit
from sirst_synth.run.space import SourceSizes
from sirst_synth.run.stages.base import DatasetStage, RunOptions, Sources, chain, copied
from sirst_synth.run.stages.displace import DisplaceJob
from sirst_synth.run.stages.negaug import check_window
from sirst_synth.run.stages.sample_noise import check_and_sample
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import PACKED_DIR, PARTS, flat_name, state_dir
from sirst_synth.store.manifest import Row, new_row
from sirst_synth.store.noisebank import open_bank, raw_pixels_path

#: the build's own noise bank: its JSON index (the pixels: ``noise-bank.bin`` beside it)
BANK_NAME = "noise-bank.json"

log = logging.getLogger("sirst_synth")


@dataclass(frozen=True)
class BuildJob(DisplaceJob):
    """One unit of the build: displace train image ``input_id`` as ``out_id`` (a
    :class:`~sirst_synth.run.stages.displace.DisplaceJob`), then write the negatives of the
    displaced image with windows of side ``s``."""

    s: int = 3
    #: write the unit's images as HDF5 chunks in one file (:mod:`sirst_synth.run.packfile`), not
    #: as PNG files (``build --format h5``)
    pack: bool = False

    def run(self, place: Place) -> list[Row]:
        base = write_displaced(place, self.input_id, self.out_id, self.row, self.noise, self.alpha, self.fit,
                               self.channels, files=not self.pack)
        if not self.pack:
            return [base.row, *write_negatives(place, base, self.s, self.channels)]
        packs = [packed_written(self.out_id, base.image, base.image_png, base.mask_png)]
        rows = [base.row, *write_negatives(place, base, self.s, self.channels, packs)]
        write_unit(place.out, self.out_id, packs, rows)
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
    #: ``build --format h5``: the file written as the images come (see :mod:`.build_h5`)
    writer: H5Writer | None = None

    def prepare(self, ds: Dataset, opts: RunOptions) -> Sources:
        p = self.params
        self.make_scratch()
        on_packed = self.writer.add if self.writer is not None else None
        sources, writer = check_and_sample(ds, PARTS, self._scanned_bank, {}, p.noise, opts, on_packed, raw=True)
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

    def space_needed(self, sizes: SourceSizes) -> int:
        """Every source file's copy (in the folder, or in the file of ``build --format h5``) and the
        generated images; with ``--format h5`` the generated images twice: their units' files in the
        staging folder and the file itself."""
        generated = self.planned_images(sizes.ids.get("train", 0)) * sizes.train_pair
        return sizes.total + generated * (2 if self.writer is not None else 1)

    def copies_originals(self) -> bool:
        """Not into the folder of ``build --format h5``: the scan hands them to its file."""
        return self.writer is None

    def started(self, out: Path, how: RunMode) -> None:
        """The staging folder of ``build --format h5`` holds its units' files (:data:`PACKED_DIR`,
        made when it starts): its images are stored for the file only, so a build of PNG files
        (plain, or ``--layout``) refuses to resume or reuse it."""
        if self.writer is not None:
            make_folder(out / PACKED_DIR)
        elif how is not RunMode.FRESH and (out / PACKED_DIR).is_dir():
            raise ResumeError(f"{out}: holds a build --format h5 (its images are stored for the HDF5 file only, "
                              "not as PNG files); finish it with --format h5, or use --force to start again")

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
        journal = Journal(state_dir(place.out) / "units.jsonl")
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
                                     channels=p.channels, s=p.s, pack=self.writer is not None))
            for unit_rows in run_recorded(run_job, jobs, [j.key for j in jobs], journal, opts.n_jobs,
                                          "building", opts.progress, place):
                room = needed - made
                made += min(room, len(unit_rows))
                if self.writer is None:
                    remove_outputs(place.out, [r["id"] for r in unit_rows[room:]])
                    continue
                kept = unit_rows[:room]  # whether run now or replayed on --resume
                for packed in unit_images(place.out, kept):
                    self.writer.add(packed)
        journal.close()
        return journal
