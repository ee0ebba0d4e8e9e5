"""sirst_synth.store.noisebank: patches and their provenance, in one HDF5 file."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from sirst_synth.errors import NoiseBankError
from sirst_synth.method.noise import NoiseRegion
from sirst_synth.store.noisebank import NoiseBank, NoiseBankWriter


def patch(seed, h, w):
    return np.random.default_rng(seed).uniform(0, 255, (h, w)).astype(np.float32)


def write_bank(path, attrs=None, writer=NoiseBankWriter):
    writer = writer(path, attrs or {"grid": 4, "max_var": 50.0, "max_mean": 255.0, "split": "50_50"})
    writer.add("img1", [NoiseRegion(0, 1, (0, 8, 8, 16), 3.5, 40.0), NoiseRegion(2, 3, (16, 24, 24, 32), 1.25, 70.0)],
               [patch(1, 8, 8), patch(2, 8, 8)])
    writer.add("img2", [], [])
    writer.add("img3", [NoiseRegion(1, 0, (5, 0, 10, 6), 2.0, 9.0)], [patch(3, 5, 6)])
    return writer


def test_patches_read_back_exactly_in_the_order_written(tmp_path):
    write_bank(tmp_path / "bank.h5").close()
    with NoiseBank(tmp_path / "bank.h5") as bank:
        assert len(bank) == 3
        for index, expected in enumerate([patch(1, 8, 8), patch(2, 8, 8), patch(3, 5, 6)]):
            got = bank.patch(index)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected)


def test_the_provenance_of_each_patch_reads_back(tmp_path):
    write_bank(tmp_path / "bank.h5").close()
    with NoiseBank(tmp_path / "bank.h5") as bank:
        assert bank.source_id == ["img1", "img1", "img3"]
        assert bank.grid.tolist() == [[0, 1], [2, 3], [1, 0]]
        assert bank.box.tolist() == [[0, 8, 8, 16], [16, 24, 24, 32], [5, 0, 10, 6]]
        assert bank.var.tolist() == [3.5, 1.25, 2.0]
        assert bank.mean.tolist() == [40.0, 70.0, 9.0]


def test_the_attributes_and_image_counts_read_back(tmp_path):
    write_bank(tmp_path / "bank.h5").close()
    with NoiseBank(tmp_path / "bank.h5") as bank:
        assert bank.attrs["grid"] == 4
        assert bank.attrs["split"] == "50_50"
        assert bank.attrs["images"] == 3
        assert bank.attrs["images_with_patches"] == 2
        assert "tool_version" in bank.attrs


def test_the_file_appears_only_when_the_writer_is_closed(tmp_path):
    writer = write_bank(tmp_path / "bank.h5")
    assert not (tmp_path / "bank.h5").exists()
    writer.close()
    assert (tmp_path / "bank.h5").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["bank.h5"]


def test_an_aborted_writer_leaves_nothing(tmp_path):
    write_bank(tmp_path / "bank.h5").abort()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_bank_is_a_noise_bank_error_naming_the_file(tmp_path):
    with pytest.raises(NoiseBankError, match=r"missing\.h5: not a readable noise bank"):
        NoiseBank(tmp_path / "missing.h5")


def test_a_file_that_is_not_a_bank_is_a_noise_bank_error(tmp_path):
    (tmp_path / "bank.h5").write_bytes(b"this is not HDF5")
    with pytest.raises(NoiseBankError, match="not a readable noise bank"):
        NoiseBank(tmp_path / "bank.h5")


def test_an_hdf5_file_without_the_index_is_a_noise_bank_error(tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("pixels", data=np.zeros(4, np.float32))
    with pytest.raises(NoiseBankError, match="not a readable noise bank"):
        NoiseBank(tmp_path / "other.h5")


def test_a_bank_without_patches_is_a_noise_bank_error(tmp_path):
    writer = NoiseBankWriter(tmp_path / "empty.h5", {})
    writer.add("img1", [], [])
    writer.close()
    with pytest.raises(NoiseBankError, match="holds no patch"):
        NoiseBank(tmp_path / "empty.h5")


def test_describe_gives_the_files_sha256_and_the_sampling_thresholds(tmp_path):
    path = tmp_path / "bank.h5"
    write_bank(path).close()
    with NoiseBank(path) as bank:
        info = bank.describe()
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["patches"] == 3
    assert info["path"] == str(path.resolve())
    assert (info["grid"], info["max_var"], info["max_mean"], info["split"]) == (4, 50.0, 255.0, "50_50")


def test_patches_read_back_across_the_writers_blocks(tmp_path, monkeypatch):
    """Pixels gathered in blocks (here of 3000 pixels) read back patch by patch, as written."""
    from sirst_synth.store import noisebank

    monkeypatch.setattr(noisebank, "_FLUSH_PIXELS", 3000)
    rng = np.random.default_rng(1)
    writer = NoiseBankWriter(tmp_path / "bank.h5", {})
    written = []
    for k in range(9):
        patches = [rng.uniform(0, 255, (16 + k, 20)).astype(np.float32) for _ in range(k % 3)]
        regions = [NoiseRegion(0, j, (0, 0, *p.shape), 1.0, 2.0) for j, p in enumerate(patches)]
        writer.add(f"img{k}", regions, patches)
        written += patches
    writer.close()
    with NoiseBank(tmp_path / "bank.h5") as bank:
        assert len(bank) == len(written)
        assert all(np.array_equal(bank.patch(i), p) for i, p in enumerate(written))


def test_a_failed_write_is_one_write_error_naming_the_file(tmp_path, monkeypatch):
    """A write HDF5 cannot make (a full disk) is a WriteError naming the file; abort drops it."""
    from sirst_synth.errors import WriteError
    from sirst_synth.store import noisebank

    monkeypatch.setattr(noisebank, "_FLUSH_PIXELS", 1)
    writer = NoiseBankWriter(tmp_path / "bank.h5", {})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(writer._pixels), "__setitem__", full_disk)
    with pytest.raises(WriteError, match=r"\.bank\.h5\..*\.tmp: cannot write \(No space left on device\)"):
        writer.add("a", [NoiseRegion(0, 0, (0, 0, 2, 2), 1.0, 2.0)], [np.ones((2, 2), np.float32)])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


# -- a build's own bank: raw pixels and a JSON index (not HDF5) ------------------------------------

def test_a_raw_bank_reads_back_what_an_hdf5_bank_holds(tmp_path, monkeypatch):
    """The same patches, bit for bit, with the same provenance and attributes, across write blocks."""
    from sirst_synth.store import noisebank
    from sirst_synth.store.noisebank import RawBankWriter, RawNoiseBank, cached_bank, open_bank, raw_pixels_path

    monkeypatch.setattr(noisebank, "_FLUSH_PIXELS", 100)  # several appends
    for writer in (write_bank(tmp_path / "bank.h5"), write_bank(tmp_path / "noise-bank.json", writer=RawBankWriter)):
        writer.add("img4", [NoiseRegion(0, 1, (0, 8, 8, 16), 3.5, 40.0), NoiseRegion(2, 3, (16, 24, 24, 32), 1.25, 70.0)],
                   [patch(4, 8, 8), patch(2, 8, 8)])
        writer.close()
    assert raw_pixels_path(tmp_path / "noise-bank.json").stat().st_size == 4 * (4 * 64 + 30)
    with open_bank(tmp_path / "noise-bank.json") as a, NoiseBank(tmp_path / "bank.h5") as b:
        assert isinstance(a, RawNoiseBank) and len(a) == len(b) == 5
        assert a.source_id == b.source_id
        for field in ("offset", "shape", "grid", "box", "var", "mean"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
            assert getattr(a, field).dtype == getattr(b, field).dtype, field
        for index in range(len(a)):
            assert a.patch(index).dtype == np.float32 and np.array_equal(a.patch(index), b.patch(index))
        assert {k: a.attrs[k] for k in ("grid", "split", "images", "images_with_patches")} == \
               {k: (b.attrs[k].item() if hasattr(b.attrs[k], "item") else b.attrs[k])
                for k in ("grid", "split", "images", "images_with_patches")}
    assert np.array_equal(cached_bank(tmp_path / "noise-bank.json").patch(4), patch(2, 8, 8))


def test_a_raw_bank_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """Until close() only temporary files exist; a full disk is one WriteError naming the file, and
    abort() leaves nothing."""
    from sirst_synth.errors import WriteError
    from sirst_synth.store import noisebank
    from sirst_synth.store.noisebank import RawBankWriter

    path = tmp_path / "noise-bank.json"
    writer = RawBankWriter(path, {})
    writer.add("a", [NoiseRegion(0, 0, (0, 0, 2, 2), 1.0, 2.0)], [np.ones((2, 2), np.float32)])
    assert [p.name for p in tmp_path.iterdir()] == [f".noise-bank.bin.{os.getpid()}.tmp"]
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise-bank.bin", "noise-bank.json"]

    monkeypatch.setattr(noisebank, "_FLUSH_PIXELS", 1)
    writer = RawBankWriter(tmp_path / "other.json", {})

    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    writer._fh = FullDisk()
    with pytest.raises(WriteError, match=r"\.other\.bin\.\d+\.tmp: cannot write \(No space left on device\)$"):
        writer.add("a", [NoiseRegion(0, 0, (0, 0, 2, 2), 1.0, 2.0)], [np.ones((2, 2), np.float32)])
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise-bank.bin", "noise-bank.json"]
