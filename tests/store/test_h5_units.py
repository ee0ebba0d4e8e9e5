"""sirst_synth.store.h5.units: a build unit's images as stored chunks, in one staging file."""
from __future__ import annotations

import pytest

from sirst_synth.errors import DatasetError
from sirst_synth.store.h5.stored import StoredImage
from sirst_synth.store.h5.units import read_unit, unit_path, write_unit


def stored() -> list[StoredImage]:
    return [StoredImage("a_r0", (4, 6), b"\x78\x01image", (4, 6), b"mask", 0),
            StoredImage("a_r0_t1_k1", (4, 6), b"\x78\x01negative", (4, 6), b"", 1)]


def rows() -> list[dict[str, str]]:
    return [{"id": "a_r0", "sha256_image": "1" * 64, "sha256_mask": "2" * 64},
            {"id": "a_r0_t1_k1", "sha256_image": "3" * 64, "sha256_mask": "2" * 64}]


def test_a_unit_file_reads_back_the_images_of_the_rows_asked(tmp_path):
    write_unit(tmp_path, "a_r0", stored(), rows())
    assert read_unit(tmp_path, "a_r0", rows()) == stored()
    assert read_unit(tmp_path, "a_r0", rows()[:1]) == stored()[:1]  # the count plan keeps a unit's first images
    assert [p.name for p in unit_path(tmp_path, "a_r0").parent.iterdir()] == ["a_r0.bin"]  # no temporary left


@pytest.mark.parametrize("damage, why", [
    (lambda b: b[:-1], "cut short: 1 bytes missing"),
    (lambda b: b + b"x", "1 bytes more than its header describes"),
    (lambda b: b"PK" + b[2:], "not a unit file"),
    (lambda b: b[:20], "damaged unit file"),
    (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:], "the chunks of 'a_r0_t1_k1' fail their CRC-32"),
])
def test_a_damaged_or_missing_unit_file_is_one_clear_error(tmp_path, damage, why):
    write_unit(tmp_path, "a_r0", stored(), rows())
    path = unit_path(tmp_path, "a_r0")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetError, match=r"a_r0\.bin: damaged unit file \(.*use --force") as err:
        read_unit(tmp_path, "a_r0", rows())
    assert why in str(err.value)
    path.unlink()
    with pytest.raises(DatasetError, match=r"a_r0\.bin: cannot read the unit's images"):
        read_unit(tmp_path, "a_r0", rows())


def test_a_unit_file_of_another_run_is_refused(tmp_path):
    """Rows whose hashes differ from those the file was written with (a file of another run)."""
    write_unit(tmp_path, "a_r0", stored(), rows())
    other = [{**rows()[0], "sha256_image": "9" * 64}]
    with pytest.raises(DatasetError, match=r"a_r0\.bin: does not hold image 'a_r0' as the build recorded it"):
        read_unit(tmp_path, "a_r0", other)
    with pytest.raises(DatasetError, match="does not hold image 'a_r1'"):
        read_unit(tmp_path, "a_r0", [{**rows()[0], "id": "a_r1"}])
