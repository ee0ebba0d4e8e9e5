"""What workers do: the job protocol, copying a source pair, and the steps stages share
(displacing an image, writing its negatives, writing a pair). Each stage defines its own job
record (:mod:`sirst_synth.run.stages`).

A record holds every decision already made (which image, which noise patch, which rotations are
wanted, output ids); a worker reads its own inputs, stores its images through the output's sink
(:mod:`sirst_synth.run.sinks`: PNG files under temporary names, renamed into place, or a unit file),
and returns only manifest rows. Workers never draw random numbers.
A worker decodes each train image once (:mod:`sirst_synth.run.sources`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sirst_synth.method.displace import displace
from sirst_synth.method.negatives import negatives
from sirst_synth.method.targets import Target
from sirst_synth.plan.ids import negative_id
from sirst_synth.run.sinks import PNG_FILES, ImageSink, Unit
from sirst_synth.run.sources import one_opencv_thread, source_pixels
from sirst_synth.store import imageio, pngbands
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import ImageSums, gray_sums
from sirst_synth.store.manifest import SUMS, Row
from sirst_synth.store.noisebank import cached_bank
from sirst_synth.store.pngbands import BandedPNG


@dataclass(frozen=True)
class Place:
    """Where workers read (source dataset, noise bank) and write (output root, through ``sink``):
    absolute paths, so that workers on other machines of a cluster reach them through a shared filesystem."""

    src: Dataset
    out: Path
    bank: str | None = None
    sink: ImageSink = PNG_FILES


@dataclass(frozen=True)
class NoiseDraw:
    """A bank patch chosen by the plan, with its provenance."""

    index: int
    source_id: str
    row: int
    col: int


@dataclass(frozen=True)
class CopyJob:
    """Copy one source image and mask byte-identical; ``row`` is its manifest row less the hashes."""

    id: str
    row: Row
    #: the scan's gray sums of a train image (:data:`SUMS`), carried to the row
    sums: ImageSums | None = None
    #: the scan's hashes of the source files (the row of an output that stores the originals from the scan)
    sha256_image: str = ""
    sha256_mask: str = ""

    @property
    def key(self) -> str:
        return f"{self.row['split']}/{self.id}"

    def run(self, place: Place) -> list[Row]:
        """The copy (:meth:`~sirst_synth.run.sinks.ImageSink.copy`) and its row (a list of one)."""
        row = self.row if self.sums is None else {**self.row, SUMS: self.sums}
        out_id = self.row.get("id") or self.id  # the row's id: flat
        return [place.sink.copy(place.src.image_path(self.id), place.src.mask_path(self.id), place.out, out_id, row,
                                (self.sha256_image, self.sha256_mask))]


class Job(Protocol):
    """A job record: every decision made; a worker calls :meth:`run`, which writes the job's files
    and returns their manifest rows. ``key`` names the job in the journal (``--resume``)."""

    @property
    def key(self) -> str: ...

    def run(self, place: Place) -> list[Row]: ...


def run_job(job: Job, place: Place) -> list[Row]:
    """What a worker runs: one job record (picklable, so joblib and dask can ship it)."""
    one_opencv_thread()
    return job.run(place)


@dataclass(frozen=True)
class Encoded:
    """A gray image with its mask and targets, the banded PNGs of both
    (:mod:`sirst_synth.store.pngbands`), and the manifest row its negatives inherit (``group``,
    ``channels``, gray sums, provenance)."""

    image: np.ndarray
    mask: np.ndarray
    targets: tuple[Target, ...]
    image_png: BandedPNG
    mask_png: BandedPNG
    row: Row


def encoded(image: np.ndarray, mask: np.ndarray, targets: tuple[Target, ...], row: Row, channels: int) -> Encoded:
    """:class:`Encoded` of a uint8 gray ``image`` written with ``channels``."""
    return Encoded(image, mask, targets, imageio.banded_image(image, channels), imageio.banded_mask(mask), row)


def write_displaced(place: Place, unit: Unit, input_id: str, out_id: str, row: Row, noise: NoiseDraw, alpha: float,
                    fit: str, channels: int) -> Encoded:
    """Displace train image ``input_id`` with the bank patch ``noise`` and store it in ``unit`` as
    ``out_id`` (docs/method.md section 3)."""
    source = source_pixels(place.src, input_id)
    assert place.bank is not None, "a displacement job needs the noise bank"
    image = displace(source.gray, cached_bank(place.bank).patch(noise.index), alpha, fit)
    row = {**row, "kind": "displaced", "group": out_id, "noise_source_id": noise.source_id,
           "noise_row": str(noise.row), "noise_col": str(noise.col), "alpha": repr(alpha),
           "channels": str(channels)}
    base = encoded(image, source.mask, source.targets, {**row, SUMS: gray_sums(image)}, channels)
    return dataclasses.replace(base, row=unit.add(out_id, base.image, base.image_png, base.mask_png, base.row))


def write_negatives(unit: Unit, base: Encoded, s: int, channels: int) -> list[Row]:
    """Store in ``unit`` the distinct negatives of every target of ``base`` (docs/method.md section 4)
    as ``<group>_t<label>_k<k>``, ``group`` from its row; they inherit its row's fields (source,
    round, noise).

    A negative differs from ``base`` in one s x s window, so only the PNG bands of the window's
    rows are deflated again, and a mask whose window the rotation leaves unchanged is ``base``'s
    mask file. Its gray sums are ``base``'s: a rotation only moves pixels inside the window."""
    group = base.row["group"]
    rows = []
    for neg in negatives(base.image, base.mask, list(base.targets), s):
        y0, y1, x0, x1 = neg.y0, neg.y0 + s, neg.x0, neg.x0 + s
        neg_row = {**base.row, "kind": "negative", "target": str(neg.target.label), "cy": str(neg.target.cy),
                   "cx": str(neg.target.cx), "s": str(s), "k": str(neg.k)}
        image_png = pngbands.changed(base.image_png, imageio.image_pixels(neg.image, channels), y0, y1)
        same_mask = np.array_equal(neg.mask[y0:y1, x0:x1], base.mask[y0:y1, x0:x1])
        mask_png = base.mask_png if same_mask else pngbands.changed(base.mask_png, neg.mask, y0, y1)
        rows.append(unit.add(negative_id(group, neg.target.label, neg.k), neg.image, image_png, mask_png, neg_row))
    return rows
