"""``displace``: copy a dataset and add ``rounds`` Noise2Noise-displaced versions of every train
image (docs/method.md section 3)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sirst_synth.plan.draws import NoiseDrawer
from sirst_synth.plan.ids import check_new_ids, displaced_id
from sirst_synth.plan.params import DisplaceParams
from sirst_synth.run.jobs import NoiseDraw, Place, run_job, write_displaced
from sirst_synth.run.journal import Journal, run_recorded
from sirst_synth.run.options import RunOptions
from sirst_synth.run.stages.base import DatasetStage, Sources, chain, copied, scan_sources
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import flat_name, state_dir
from sirst_synth.store.manifest import Row, new_row
from sirst_synth.store.noisebank import NoiseBank


def inherited(row: Row | None, id_: str, round_: int | None = None) -> Row:
    """Fields a generated image inherits from its input's manifest row."""
    source = (row or {}).get("source_id") or id_
    fields: dict[str, Any] = {"split": "train", "source_id": source}
    if round_ is not None:
        fields["round"] = round_
    elif row and row.get("round"):
        fields.update({k: row[k] for k in ("round", "noise_source_id", "noise_row", "noise_col", "alpha")})
    return new_row(**fields)


@dataclass(frozen=True)
class DisplaceJob:
    """Displace train image ``input_id`` with the planned patch ``noise``; write it as ``out_id``.
    ``row`` holds the fields the output inherits (source, round)."""

    input_id: str
    out_id: str
    row: Row
    noise: NoiseDraw
    alpha: float
    fit: str
    channels: int = 1

    @property
    def key(self) -> str:
        return self.out_id

    def run(self, place: Place) -> list[Row]:
        unit = place.sink.unit(place.out, self.out_id)
        base = write_displaced(place, unit, self.input_id, self.out_id, self.row, self.noise, self.alpha, self.fit,
                               self.channels)
        unit.close()
        return [base.row]


@dataclass
class Displace(DatasetStage):
    """Displace every train image ``rounds`` times with patches of the noise bank at ``bank``."""

    name: ClassVar[str] = "displace"
    params: DisplaceParams
    bank: Path
    _bank_info: dict[str, Any] = field(default_factory=dict, init=False)
    _units: list[DisplaceJob] = field(default_factory=list, init=False)

    def prepare(self, ds: Dataset, opts: RunOptions) -> Sources:
        p = self.params
        self._units = []
        with NoiseBank(self.bank) as bank:
            bank_sources, grid, self._bank_info = bank.source_id, bank.grid, bank.describe()
        sources = scan_sources(ds, opts)
        manifest = ds.manifest() or {}
        check_new_ids({flat_name(i) for i in sources.ids()},
                      (displaced_id(flat_name(r.id), k) for r in sources.train for k in range(p.rounds)))
        drawer = NoiseDrawer(bank_sources, p.seed)
        for r in range(p.rounds):
            for rec in sources.train:
                row = inherited(manifest.get(rec.id), rec.id, r)
                idx = drawer.draw(rec.id, r, row["source_id"])
                draw = NoiseDraw(idx, bank_sources[idx], int(grid[idx][0]), int(grid[idx][1]))
                self._units.append(DisplaceJob(rec.id, displaced_id(flat_name(rec.id), r), row, draw, p.alpha, p.fit,
                                                p.channels))
        return sources

    def record_params(self) -> dict[str, Any]:
        if not self._bank_info:  # --resume on a finished output compares the record before prepare()
            with NoiseBank(self.bank) as bank:
                self._bank_info = bank.describe()
        return {**self.params.record(), "noise_bank_sha256": self._bank_info["sha256"]}

    def planned_images(self, train: int) -> int:
        return self.params.rounds * train

    def place_bank(self, out: Path) -> str | None:
        return str(Path(self.bank).resolve())

    def train_rows(self, sources: Sources, place: Place, copies: Journal, opts: RunOptions) -> Iterable[Row]:
        journal = Journal(state_dir(place.out) / "units.jsonl")
        for _ in run_recorded(run_job, self._units, [u.key for u in self._units], journal, opts.n_jobs,
                              "displacing", opts.progress, place):
            pass
        return chain(copied(copies, "train"), journal.rows())

    def extra_info(self) -> dict[str, Any]:
        return {"noise_bank": self._bank_info}
