"""What workers do: the job protocol, copying a source pair, and the steps stages share
(displacing an image, writing its negatives, writing a pair). Each stage defines its own job
record (:mod:`sirst_synth.run.stages`).

A record holds every decision already made (which image, which noise patch, which rotations are
wanted, output ids); a worker reads its own inputs, writes its own outputs under temporary names,
and returns only manifest rows. Workers never draw random numbers.
A worker decodes each train image once (:mod:`sirst_synth.run.sources`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sirst_synth.method.displace import displace
from sirst_synth.method.negatives import negatives
from sirst_synth.method.targets import Target
from sirst_synth.plan.ids import negative_id
from sirst_synth.run.pack import Packed, packed_written
from sirst_synth.run.sources import one_opencv_thread, source_pixels
from sirst_synth.store import imageio, pngbands
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.fingerprint import ImageSums, gray_sums
from sirst_synth.store.layout import image_name, mask_name
from sirst_synth.store.manifest import SUMS, Row
from sirst_synth.store.noisebank import cached_bank
from sirst_synth.store.pngbands import BandedPNG


@dataclass(frozen=True)
class Place:
    """Where workers read (source dataset, noise bank) and write (output root): absolute paths,
    so that workers on other machines of a cluster reach them through a shared filesystem."""

    src: Dataset
    out: Path
    bank: str | None = None


@dataclass(frozen=True)
class CopyJob:
    """Copy one source image and mask byte-identical; ``row`` is its manifest row less the hashes."""

    id: str
    row: Row
    #: the scan's gray sums of a train image (:data:`SUMS`), carried to the row
    sums: ImageSums | None = None
    #: the scan's hashes of the source files (what :func:`recorded_copy` records)
    sha256_image: str = ""
    sha256_mask: str = ""


@dataclass(frozen=True)
class NoiseDraw:
    """A bank patch chosen by the plan, with its provenance."""

    index: int
    source_id: str
    row: int
    col: int


def write_pair(out: Path, id_: str, image_png: bytes, mask_png: bytes, row: Row, files: bool = True) -> Row:
    """Write an image and its mask as ``id_`` (atomically); return ``row`` with the id and both hashes.
    ``files=False``: the row only (an output that stores the images otherwise)."""
    if files:
        root = os.fspath(out)
        imageio.write_atomic(f"{root}/{image_name(id_)}", image_png)
        imageio.write_atomic(f"{root}/{mask_name(id_)}", mask_png)
    return {**row, "id": id_, "sha256_image": imageio.sha256(image_png), "sha256_mask": imageio.sha256(mask_png)}


def run_copy(job: CopyJob, place: Place) -> list[Row]:
    """Copy image and mask bytes unchanged; return the row with their hashes (a list of one)."""
    image = imageio.read_bytes(place.src.image_path(job.id))
    mask = imageio.read_bytes(place.src.mask_path(job.id))
    row = job.row if job.sums is None else {**job.row, SUMS: job.sums}
    return [write_pair(place.out, job.row.get("id") or job.id, image, mask, row)]  # the row's id: flat


def recorded_copy(job: CopyJob, place: Place) -> list[Row]:
    """The row :func:`run_copy` returns, from the scan's hashes, without writing the files: for an
    output that keeps the originals elsewhere (``build --format h5`` stores them in its file)."""
    row = job.row if job.sums is None else {**job.row, SUMS: job.sums}
    return [{**row, "id": job.row.get("id") or job.id, "sha256_image": job.sha256_image,
             "sha256_mask": job.sha256_mask}]


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


def write_displaced(place: Place, input_id: str, out_id: str, row: Row, noise: NoiseDraw, alpha: float, fit: str,
                    channels: int, files: bool = True) -> Encoded:
    """Displace train image ``input_id`` with the bank patch ``noise`` and write it as ``out_id``
    (docs/method.md section 3); ``files=False``: encode it and make its row without writing it."""
    imageio.check_channels(channels)
    source = source_pixels(place.src, input_id)
    assert place.bank is not None, "a displacement job needs the noise bank"
    image = displace(source.gray, cached_bank(place.bank).patch(noise.index), alpha, fit)
    row = {**row, "kind": "displaced", "group": out_id, "noise_source_id": noise.source_id,
           "noise_row": str(noise.row), "noise_col": str(noise.col), "alpha": repr(alpha),
           "channels": str(channels)}
    base = encoded(image, source.mask, source.targets, {**row, SUMS: gray_sums(image)}, channels)
    written = write_pair(place.out, out_id, base.image_png.png(), base.mask_png.png(), base.row, files)
    return dataclasses.replace(base, row=written)


def write_negatives(place: Place, base: Encoded, s: int, channels: int, packs: list[Packed] | None = None) -> list[Row]:
    """Write the distinct negatives of every target of ``base`` (docs/method.md section 4) as
    ``<group>_t<label>_k<k>``, ``group`` from its row; they inherit its row's fields (source,
    round, noise).

    A negative differs from ``base`` in one s x s window, so only the PNG bands of the window's
    rows are deflated again, and a mask whose window the rotation leaves unchanged is ``base``'s
    mask file. Its gray sums are ``base``'s: a rotation only moves pixels inside the window.
    ``packs``: instead of writing the files, append each negative's HDF5 chunks to it."""
    imageio.check_channels(channels)
    group, mask_bytes = base.row["group"], base.mask_png.png()
    rows = []
    for neg in negatives(base.image, base.mask, list(base.targets), s):
        y0, y1, x0, x1 = neg.y0, neg.y0 + s, neg.x0, neg.x0 + s
        neg_row = {**base.row, "kind": "negative", "target": str(neg.target.label), "cy": str(neg.target.cy),
                   "cx": str(neg.target.cx), "s": str(s), "k": str(neg.k)}
        image_png = pngbands.changed(base.image_png, imageio.image_pixels(neg.image, channels), y0, y1)
        same_mask = np.array_equal(neg.mask[y0:y1, x0:x1], base.mask[y0:y1, x0:x1])
        mask_png = base.mask_png if same_mask else pngbands.changed(base.mask_png, neg.mask, y0, y1)
        neg_id = negative_id(group, neg.target.label, neg.k)
        row = write_pair(place.out, neg_id, image_png.png(), mask_bytes if same_mask else mask_png.png(), neg_row,
                         packs is None)
        if packs is not None:
            packs.append(packed_written(neg_id, neg.image, image_png, mask_png))
        rows.append(row)
    return rows


def remove_outputs(out: Path, ids: list[str]) -> None:
    """Delete the image and mask files of ``ids`` (the part of a unit cut off by the count plan)."""
    for id_ in ids:
        (out / image_name(id_)).unlink(missing_ok=True)
        (out / mask_name(id_)).unlink(missing_ok=True)

