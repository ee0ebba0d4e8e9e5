"""A build unit's images as the dataset HDF5 file stores them, kept in one file a unit in the
staging folder of ``build --format h5`` (its :data:`~sirst_synth.store.layout.UNITS_DIR`), named
after the unit's displaced id (every image of the unit has it as its ``group``).

A unit's worker writes its displaced image and negatives this way instead of two PNG files each;
the writing process reads the file back to add the images to the HDF5 file, now or when
``--resume`` replays the unit; only the manifest rows travel back from the worker.

    b"SSPACK1\\n", 8-byte big-endian length of the header, header (JSON: one entry per image,
    ``[id, image shape, image layout, mask shape, image chunk bytes, mask chunk bytes,
    CRC-32 of the image chunk, CRC-32 of the mask chunk, sha256_image, sha256_mask]``, the last
    two from the image's manifest row), then each image's chunk followed by its mask's chunk, in
    header order.
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

from sirst_synth.errors import DatasetError
from sirst_synth.store import imageio
from sirst_synth.store.h5.stored import StoredImage
from sirst_synth.store.layout import UNITS_DIR
from sirst_synth.store.manifest import Row

_MAGIC = b"SSPACK1\n"
_START = len(_MAGIC) + 8


def unit_path(root: Path | str, group: str) -> Path:
    """The file of the unit whose images have ``group`` (its displaced image's id) in ``root``."""
    return Path(root) / UNITS_DIR / f"{group}.bin"


def write_unit(root: Path | str, group: str, images: Sequence[StoredImage], rows: Sequence[Row]) -> None:
    """Write the unit's images as stored chunks with their rows' hashes (``rows[i]`` is the row of
    ``images[i]``), atomically, as every output file."""
    header = json.dumps([[p.id, list(p.image_shape), p.image_layout, list(p.mask_shape), len(p.image_chunk),
                          len(p.mask_chunk), zlib.crc32(p.image_chunk), zlib.crc32(p.mask_chunk),
                          row["sha256_image"], row["sha256_mask"]] for p, row in zip(images, rows, strict=True)],
                        separators=(",", ":")).encode("utf-8")
    parts = [_MAGIC, len(header).to_bytes(8, "big"), header]
    for s in images:
        parts += [s.image_chunk, s.mask_chunk]
    path = unit_path(root, group)
    path.parent.mkdir(exist_ok=True)
    imageio.write_atomic(path, b"".join(parts))


def read_unit(root: Path | str, group: str, rows: Sequence[Row]) -> list[StoredImage]:
    """The stored images of ``rows`` (rows of the unit ``group``, as the journal has them), in
    their order. DatasetError, naming the file, when it is missing or damaged (a chunk's CRC-32),
    or holds other images than the rows' (another run's file)."""
    path = unit_path(root, group)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the unit's images ({exc.strerror}); use --force to start again") from None
    stored = _entries(path, data)
    images = []
    for row in rows:
        entry = stored.get(row["id"])
        if entry is None or entry[1:] != (row["sha256_image"], row["sha256_mask"]):
            raise DatasetError(f"{path}: does not hold image {row['id']!r} as the build recorded it (a file of "
                               "another run?); use --force to start again")
        images.append(entry[0])
    return images


def unit_images(root: Path, rows: Sequence[Row]) -> list[StoredImage]:
    """The stored images of ``rows``, rows of one unit in ``root`` (:func:`read_unit`)."""
    return read_unit(root, rows[0]["group"], rows)


def _entries(path: Path, data: bytes) -> dict[str, tuple[StoredImage, str, str]]:
    """Every image of a unit file with its row hashes, its chunks checked against their CRC-32."""
    try:
        if not data.startswith(_MAGIC) or len(data) < _START:
            raise ValueError("not a unit file")
        size = int.from_bytes(data[len(_MAGIC):_START], "big")
        entries = json.loads(data[_START:_START + size])
        at, stored = _START + size, {}
        for id_, image_shape, layout, mask_shape, image_len, mask_len, image_crc, mask_crc, sha_i, sha_m in entries:
            image, mask = data[at:at + image_len], data[at + image_len:at + image_len + mask_len]
            at += image_len + mask_len
            if at > len(data):
                raise ValueError(f"cut short: {at - len(data)} bytes missing")
            if zlib.crc32(image) != image_crc or zlib.crc32(mask) != mask_crc:
                raise ValueError(f"the chunks of {id_!r} fail their CRC-32")
            stored[id_] = (StoredImage(id_, tuple(image_shape), image, tuple(mask_shape), mask, layout), sha_i, sha_m)
        if at != len(data):
            raise ValueError(f"{len(data) - at} bytes more than its header describes")
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: damaged unit file ({exc}); use --force to start again") from None
    return stored
