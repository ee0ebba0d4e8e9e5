"""sirst_synth.run.packfile: a build unit's images as stored chunks, in one staging file."""
from __future__ import annotations

import pytest

from sirst_synth.errors import DatasetError
from sirst_synth.run.pack import Packed
from sirst_synth.run.packfile import read_unit, unit_path, write_unit


def packs() -> list[Packed]:
    return [Packed("a_r0", (4, 6), b"\x78\x01image", (4, 6), b"mask", 0),
            Packed("a_r0_t1_k1", (4, 6), b"\x78\x01negative", (4, 6), b"", 1)]


def test_a_unit_file_reads_back_every_image_as_written(tmp_path):
    write_unit(tmp_path, "a_r0", packs())
    assert read_unit(tmp_path, "a_r0") == {p.id: p for p in packs()}
    assert [p.name for p in unit_path(tmp_path, "a_r0").parent.iterdir()] == ["a_r0.bin"]  # no temporary left


@pytest.mark.parametrize("damage", [lambda b: b[:-1], lambda b: b + b"x", lambda b: b"PK" + b[2:], lambda b: b[:20]])
def test_a_damaged_or_missing_unit_file_is_one_clear_error(tmp_path, damage):
    write_unit(tmp_path, "a_r0", packs())
    path = unit_path(tmp_path, "a_r0")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetError, match=r"a_r0\.bin: damaged unit file .*use --force"):
        read_unit(tmp_path, "a_r0")
    path.unlink()
    with pytest.raises(DatasetError, match=r"a_r0\.bin: cannot read the unit's images"):
        read_unit(tmp_path, "a_r0")
