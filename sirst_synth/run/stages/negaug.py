"""``negaug``: copy a dataset and add the rotated negatives of every target of its train images
(docs/method.md section 4)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from sirst_synth.errors import PlanError
from sirst_synth.method.gray import rounded_gray
from sirst_synth.method.negatives import check_window_size
from sirst_synth.plan.ids import check_new_ids, negative_ids
from sirst_synth.plan.params import NegaugParams
from sirst_synth.run.jobs import Place, encoded, run_job, write_negatives
from sirst_synth.run.journal import Journal, run_recorded
from sirst_synth.run.options import RunOptions
from sirst_synth.run.scan import SourceRecord
from sirst_synth.run.sources import source_pixels
from sirst_synth.run.stages.base import DatasetStage, Sources, copied, scan_sources
from sirst_synth.run.stages.displace import inherited
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import gray_sums
from sirst_synth.store.layout import flat_name, state_dir
from sirst_synth.store.manifest import SUMS, Row


def check_window(s: int, records: Iterable[SourceRecord]) -> None:
    """Refuse ``s`` larger than any train image (named by id)."""
    for r in records:
        try:
            check_window_size(s, r.height, r.width)
        except ValueError as exc:
            raise PlanError(f"--s: {exc} ({r.part} id {r.id!r})") from None


@dataclass(frozen=True)
class NegateJob:
    """Write the negatives of train image ``input_id`` (copied as ``out_id``) around each target."""

    input_id: str
    out_id: str
    row: Row
    s: int
    channels: int = 1

    @property
    def key(self) -> str:
        return f"{self.out_id}/negatives"

    def run(self, place: Place) -> list[Row]:
        source = source_pixels(place.src, self.input_id)
        image = rounded_gray(source.gray)  # a colour source's gray, rounded
        row = {**self.row, "group": self.out_id, "channels": str(self.channels), SUMS: gray_sums(image)}
        unit = place.sink.unit(place.out, self.out_id)
        rows = write_negatives(unit, encoded(image, source.mask, source.targets, row, self.channels), self.s,
                               self.channels)
        unit.close()
        return rows


@dataclass
class Negaug(DatasetStage):
    """Add the distinct negatives of the train images of ``params.kinds``."""

    name: ClassVar[str] = "negaug"
    params: NegaugParams
    _units: list[NegateJob] = field(default_factory=list, init=False)

    def prepare(self, ds: Dataset, opts: RunOptions) -> Sources:
        self._units = []
        sources = scan_sources(ds, opts)
        check_window(self.params.s, sources.train)
        manifest = ds.manifest() or {}
        for rec in sources.train:
            row = manifest.get(rec.id)
            if ((row or {}).get("kind") or "original") in self.params.kinds:
                self._units.append(NegateJob(rec.id, flat_name(rec.id), inherited(row, rec.id), self.params.s,
                                              self.params.channels))
        targets = {r.id: r.targets for r in sources.train}
        check_new_ids({flat_name(i) for i in sources.ids()},
                      (i for u in self._units for i in negative_ids(u.out_id, targets[u.input_id])))
        return sources

    def train_rows(self, sources: Sources, place: Place, copies: Journal, opts: RunOptions) -> Iterable[Row]:
        """Each train image followed by its negatives."""
        journal = Journal(state_dir(place.out) / "units.jsonl")
        negs = dict(zip((u.input_id for u in self._units),
                        run_recorded(run_job, self._units, [u.key for u in self._units], journal,
                                     opts.n_jobs, "negatives", opts.progress, place)))
        train = {row["id"]: row for row in copied(copies, "train")}
        return [r for rec in sources.train for r in (train[flat_name(rec.id)], *negs.get(rec.id, []))]
