"""One build unit's images as stored in an HDF5 dataset file, kept in one file of the staging
folder of ``build --format h5`` (:mod:`sirst_synth.run.stages.build_h5`).

A unit's worker writes its displaced image and negatives this way instead of two PNG files each:
one file per unit, named after the unit's displaced id (every image of the unit has it as its
``group``), in :data:`~sirst_synth.store.layout.PACKED_DIR`. The writing process reads it back
to add the images to the file, now or when ``--resume`` replays the unit; only the manifest rows
travel back from the worker.

    b"SSPACK1\\n", 8-byte big-endian length of the header, header (JSON: one entry per image,
    ``[id, image shape, image layout, mask shape, image chunk bytes, mask chunk bytes]``), then
    each image's chunk followed by its mask's chunk, in header order.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sirst_synth.errors import DatasetError
from sirst_synth.run.pack import Packed
from sirst_synth.store import imageio
from sirst_synth.store.layout import PACKED_DIR

_MAGIC = b"SSPACK1\n"


def unit_path(root: Path | str, group: str) -> Path:
    """The file of the unit whose images have ``group`` (its displaced image's id) in ``root``."""
    return Path(root) / PACKED_DIR / f"{group}.bin"


def write_unit(root: Path | str, group: str, packs: Sequence[Packed]) -> None:
    """Write the unit's images as stored chunks (atomically, as every output file)."""
    header = json.dumps([[p.id, list(p.image_shape), p.image_layout, list(p.mask_shape), len(p.image_chunk),
                          len(p.mask_chunk)] for p in packs], separators=(",", ":")).encode("utf-8")
    parts = [_MAGIC, len(header).to_bytes(8, "big"), header]
    for p in packs:
        parts += [p.image_chunk, p.mask_chunk]
    path = unit_path(root, group)
    path.parent.mkdir(exist_ok=True)
    imageio.write_atomic(path, b"".join(parts))


def read_unit(root: Path | str, group: str) -> dict[str, Packed]:
    """The images of the unit ``group`` by id; DatasetError when its file is missing or damaged."""
    path = unit_path(root, group)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the unit's images ({exc.strerror}); use --force to start again") from None
    try:
        if not data.startswith(_MAGIC):
            raise ValueError("not a unit file")
        size = int.from_bytes(data[8:16], "big")
        entries = json.loads(data[16:16 + size])
        at, packs = 16 + size, {}
        for id_, image_shape, layout, mask_shape, image_len, mask_len in entries:
            image, mask = data[at:at + image_len], data[at + image_len:at + image_len + mask_len]
            at += image_len + mask_len
            packs[id_] = Packed(id_, tuple(image_shape), image, tuple(mask_shape), mask, layout)
        if at != len(data):
            raise ValueError(f"{len(data) - at} bytes more than its header describes")
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: damaged unit file ({exc}); use --force to start again") from None
    return packs
