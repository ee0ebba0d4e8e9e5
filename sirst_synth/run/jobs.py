"""Job records and the worker code that executes them.

A record holds every decision already made (which image, which noise patch, which rotations are
wanted, output ids); a worker reads its own inputs, writes its own outputs under temporary names,
and returns only manifest rows. Workers never draw random numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sirst_synth.method.displace import displace
from sirst_synth.method.negatives import negatives
from sirst_synth.method.targets import find_targets
from sirst_synth.plan.ids import negative_id
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import image_name, mask_name
from sirst_synth.store.manifest import Row
from sirst_synth.store.noisebank import cached_bank


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


@dataclass(frozen=True)
class NoiseDraw:
    """A bank patch chosen by the plan, with its provenance."""

    index: int
    source_id: str
    row: int
    col: int


@dataclass(frozen=True)
class UnitJob:
    """One input image turned into new images: optionally displaced, then optionally negated.

    With ``noise`` the worker writes the displaced image ``out_id`` and negates it; without, it
    negates the input itself (already copied as ``out_id``). ``s`` None means no negatives.
    ``row`` holds the fields inherited by every output row (source, round, noise, alpha).
    """

    input_id: str
    out_id: str
    row: Row
    noise: NoiseDraw | None = None
    alpha: float = 0.0
    fit: str = "resize"
    s: int | None = None


def _write_pair(out: Path, id_: str, image_png: bytes, mask_png: bytes, row: Row) -> Row:
    imageio.write_atomic(out / image_name(id_), image_png)
    imageio.write_atomic(out / mask_name(id_), mask_png)
    return {**row, "id": id_, "sha256_image": imageio.sha256(image_png), "sha256_mask": imageio.sha256(mask_png)}


def run_copy(job: CopyJob, place: Place) -> list[Row]:
    """Copy image and mask bytes unchanged; return the row with their hashes (a list of one)."""
    image = imageio.read_bytes(place.src.image_path(job.id))
    mask = imageio.read_bytes(place.src.mask_path(job.id))
    return [_write_pair(place.out, job.row.get("id") or job.id, image, mask, job.row)]  # the row's id: flat


def run_unit(job: UnitJob, place: Place) -> list[Row]:
    """Execute a unit; rows in output order: the displaced image (if any), then its negatives."""
    image = place.src.read_image(job.input_id)
    mask_png = imageio.read_bytes(place.src.mask_path(job.input_id))
    mask = imageio.mask_from_image(imageio.decode_image(mask_png, str(place.src.mask_path(job.input_id))))
    rows = []
    base_row = dict(job.row)
    if job.noise is not None:
        assert place.bank is not None, "a displacement job needs the noise bank"
        patch = cached_bank(place.bank).patch(job.noise.index)
        image = displace(image, patch, job.alpha, job.fit)
        base_row.update(
            kind="displaced", group=job.out_id, noise_source_id=job.noise.source_id,
            noise_row=str(job.noise.row), noise_col=str(job.noise.col), alpha=repr(job.alpha),
        )
        rows.append(_write_pair(place.out, job.out_id, imageio.encode_png(image), mask_png, base_row))
    if job.s is not None:
        for neg in negatives(image, mask, find_targets(mask), job.s):
            row = {
                **base_row, "kind": "negative", "group": job.out_id, "target": str(neg.target.label),
                "cy": str(neg.target.cy), "cx": str(neg.target.cx), "s": str(job.s), "k": str(neg.k),
            }
            out_id = negative_id(job.out_id, neg.target.label, neg.k)
            rows.append(_write_pair(place.out, out_id, imageio.encode_png(neg.image), imageio.encode_png(neg.mask), row))
    return rows


def remove_outputs(out: Path, ids: list[str]) -> None:
    """Delete the image and mask files of ``ids`` (the part of a unit cut off by the count plan)."""
    for id_ in ids:
        (out / image_name(id_)).unlink(missing_ok=True)
        (out / mask_name(id_)).unlink(missing_ok=True)

