"""The noise bank: kept noise patches with their provenance, in one HDF5 file (docs/method.md section 2).

Layout (all datasets indexed by patch number, except ``pixels``):

    pixels       float32 (total,)   every patch's gray pixels, concatenated, row-major
    offset       int64   (n,)       start of each patch in ``pixels``
    shape        int32   (n, 2)     patch height, width
    source_id    str     (n,)       id of the image the patch was cut from
    grid         int32   (n, 2)     grid row, column of the region
    box          int32   (n, 4)     pixel box y0, x0, y1, x1
    var, mean    float64 (n,)
    attrs: grid, max_var, max_mean, split, images, images_with_patches, tool version

Patches are appended while sampling, in blocks of about 4 MiB, so the bank is never held in memory whole.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from sirst_synth import __version__
from sirst_synth.errors import NoiseBankError, WriteError
from sirst_synth.method.noise import NoiseRegion
from sirst_synth.store.h5dataset import discard_unfinished
from sirst_synth.store.layout import temp_path

_CHUNK = 4096
#: pixels gathered before they are appended to the file: few large writes instead of one per image.
_FLUSH_PIXELS = 1 << 20




class NoiseBankWriter:
    """Append patches image by image; ``close()`` writes the index. Writes to a temporary file
    that is renamed to ``path`` only when closed without error."""

    def __init__(self, path: str | os.PathLike, attrs: dict, fast: bool = False):
        """``fast``: the pixels uncompressed instead of gzip level 4 with shuffle (4 bytes a pixel,
        written and read without compressing), for a build's own bank, which the build removes
        when it completes."""
        self.path = Path(path)
        self._tmp = temp_path(self.path)
        self._file = h5py.File(self._tmp, "w")
        packing: dict = {} if fast else {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        self._pixels = self._file.create_dataset(
            "pixels", shape=(0,), maxshape=(None,), dtype="float32", chunks=(_CHUNK,), **packing)
        self._attrs = dict(attrs)
        self._rows: list[tuple] = []
        self._size = 0
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self.images = 0
        self.images_with_patches = 0

    def add(self, source_id: str, regions: Sequence[NoiseRegion], patches: Sequence[np.ndarray]) -> None:
        """Append one image's kept regions and their float32 patches."""
        self.images += 1
        if regions:
            self.images_with_patches += 1
        flat = [np.asarray(p, dtype=np.float32).ravel() for p in patches]
        for region, patch, f in zip(regions, patches, flat):
            self._rows.append((source_id, region, self._size, patch.shape))
            self._size += f.size
        self._pending += flat
        self._pending_size += sum(f.size for f in flat)
        if self._pending_size >= _FLUSH_PIXELS:
            self._flush()

    def _flush(self) -> None:
        """Append the pending pixels to the file."""
        if self._pending_size:
            start = self._pixels.shape[0]
            with self._writing():
                self._pixels.resize((start + self._pending_size,))
                self._pixels[start:] = np.concatenate(self._pending)
        self._pending, self._pending_size = [], 0

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """HDF5's failed writes (a full disk) as one :class:`WriteError` naming the file."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            errno = getattr(exc, "errno", None) or next((e for e in range(1, 134) if f"errno = {e}," in str(exc)), None)
            reason = os.strerror(errno) if errno else str(exc).splitlines()[0]
            raise WriteError(f"{self._tmp}: cannot write ({reason})") from None

    def __len__(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        """Write the index and attributes, then move the file into place."""
        f, rows = self._file, self._rows
        self._flush()
        with self._writing():
            self._write_index(f, rows)
        os.replace(self._tmp, self.path)

    def _write_index(self, f: h5py.File, rows: list[tuple]) -> None:
        f.create_dataset("offset", data=np.array([r[2] for r in rows], dtype=np.int64))
        f.create_dataset("shape", data=np.array([r[3] for r in rows], dtype=np.int32).reshape(-1, 2))
        f.create_dataset("source_id", data=[r[0] for r in rows], dtype=h5py.string_dtype())
        f.create_dataset("grid", data=np.array([(r[1].row, r[1].col) for r in rows], dtype=np.int32).reshape(-1, 2))
        f.create_dataset("box", data=np.array([r[1].box for r in rows], dtype=np.int32).reshape(-1, 4))
        f.create_dataset("var", data=np.array([r[1].var for r in rows], dtype=np.float64))
        f.create_dataset("mean", data=np.array([r[1].mean for r in rows], dtype=np.float64))
        f.attrs.update(self._attrs)
        f.attrs["images"] = self.images
        f.attrs["images_with_patches"] = self.images_with_patches
        f.attrs["tool_version"] = __version__
        f.close()

    def abort(self) -> None:
        """Drop the temporary file (whatever state a failed write left it in)."""
        discard_unfinished(self._file, self._tmp)


class NoiseBank:
    """Read access to a noise bank; the small index is loaded, pixels are read per patch."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
            f = self._file
            self.offset = f["offset"][()]
            self.shape = f["shape"][()]
            self.source_id = [s.decode() if isinstance(s, bytes) else s for s in f["source_id"][()]]
            self.grid = f["grid"][()]
            self.box = f["box"][()]
            self.var = f["var"][()]
            self.mean = f["mean"][()]
            self.attrs = dict(f.attrs)
            self._pixels = f["pixels"]
        except (OSError, KeyError) as exc:
            raise NoiseBankError(f"{self.path}: not a readable noise bank ({exc})") from None
        if len(self.offset) == 0:
            raise NoiseBankError(f"{self.path}: the noise bank holds no patch")

    def __len__(self) -> int:
        return len(self.offset)

    def describe(self) -> dict:
        """Path, content hash, patch count and sampling thresholds, for a dataset's record."""
        import hashlib

        with open(self.path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        keep = ("grid", "max_var", "max_mean", "split", "source")
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in self.attrs.items() if k in keep}
        return {"path": str(self.path.resolve()), "sha256": digest, "patches": len(self), **attrs}

    def patch(self, index: int) -> np.ndarray:
        """The float32 (h, w) gray patch number ``index``."""
        h, w = (int(v) for v in self.shape[index])
        start = int(self.offset[index])
        return self._pixels[start : start + h * w].reshape(h, w)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> NoiseBank:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_open_banks: dict[tuple[str, float, int], NoiseBank] = {}


def cached_bank(path: str | os.PathLike) -> NoiseBank:
    """A per-process open bank, reused across jobs in a worker (keyed by path, mtime and size)."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_mtime, st.st_size)
    bank = _open_banks.get(key)
    if bank is None:
        for old in _open_banks.values():
            old.close()
        _open_banks.clear()
        bank = _open_banks[key] = NoiseBank(path)
    return bank
