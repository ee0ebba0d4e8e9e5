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

A build's own bank (in its state folder, removed when the build completes) is not HDF5: its
pixels are one raw file of little-endian float32 (``noise-bank.bin``, the ``pixels`` above),
memory-mapped by the workers, and its index and attributes one JSON file beside it
(``noise-bank.json``, written last: :class:`RawBankWriter`, :class:`RawNoiseBank`). The same
patches as an HDF5 bank, bit for bit; a failed write (a full disk) is a plain ``OSError``, so no
library can end the process after the error line. :func:`open_bank` opens either kind.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sirst_synth import __version__
from sirst_synth.errors import NoiseBankError, WriteError
from sirst_synth.method.noise import NoiseRegion
from sirst_synth.store.h5.format import discard_unfinished
from sirst_synth.store.layout import temp_path

_CHUNK = 4096
#: pixels gathered before they are appended to the file: few large writes instead of one per image.
_FLUSH_PIXELS = 1 << 20
#: the raw bank's pixels: little-endian float32
RAW_DTYPE = "<f4"
#: ``format`` of a raw bank's JSON index
RAW_FORMAT = "sirst-synth raw noise bank"


class NoiseBankWriter:
    """Append patches image by image; ``close()`` writes the index. Writes to a temporary file
    that is renamed to ``path`` only when closed without error."""

    def __init__(self, path: str | os.PathLike, attrs: dict):
        self.path = Path(path)
        self._attrs = dict(attrs)
        self._rows: list[tuple] = []
        self._size = 0
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self.images = 0
        self.images_with_patches = 0
        self._tmp = temp_path(self.path)
        self._open()

    def _open(self) -> None:
        self._file = h5py.File(self._tmp, "w")
        self._pixels = self._file.create_dataset("pixels", shape=(0,), maxshape=(None,), dtype="float32",
                                                 chunks=(_CHUNK,), compression="gzip", compression_opts=4, shuffle=True)

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
            with self._writing():
                self._append(np.concatenate(self._pending))
        self._pending, self._pending_size = [], 0

    def _append(self, pixels: np.ndarray) -> None:
        start = self._pixels.shape[0]
        self._pixels.resize((start + pixels.size,))
        self._pixels[start:] = pixels

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

    def _write_index(self, f: Any, rows: list[tuple]) -> None:
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


def raw_pixels_path(path: Path) -> Path:
    """The pixel file of the raw bank whose JSON index is ``path``: ``noise-bank.json`` -> ``noise-bank.bin``."""
    return path.with_suffix(".bin")


class RawBankWriter(NoiseBankWriter):
    """A build's own bank (see the module docstring): the pixels appended to a raw file, the
    index written as JSON by ``close()``; both under temporary names, renamed into place (the
    pixels first, the index last) only when closed without error. Every write is a plain ``write``:
    a full disk is one :class:`WriteError` naming the file."""

    def _open(self) -> None:
        self._bin = raw_pixels_path(self.path)
        self._bin_tmp = temp_path(self._bin)
        self._fh = self._writing_open(self._bin_tmp)

    def _writing_open(self, path: Path) -> Any:
        try:
            return open(path, "wb")  # noqa: SIM115  (closed by close() or abort())
        except OSError as exc:
            raise WriteError(f"{path}: cannot write ({exc.strerror or exc})") from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise WriteError(f"{self._bin_tmp}: cannot write ({exc.strerror or exc})") from None

    def _append(self, pixels: np.ndarray) -> None:
        self._fh.write(pixels.astype(RAW_DTYPE, copy=False).tobytes())

    def close(self) -> None:
        """Write the pixels' last block, then the JSON index; rename both into place."""
        from sirst_synth.store.imageio import write_atomic

        self._flush()
        with self._writing():
            self._fh.close()
        rows = self._rows
        names = sorted({r[0] for r in rows})
        number = {name: i for i, name in enumerate(names)}
        index = {
            "format": RAW_FORMAT, "pixels": self._bin.name, "dtype": RAW_DTYPE, "size": self._size,
            "attrs": {**{k: (v.item() if hasattr(v, "item") else v) for k, v in self._attrs.items()},
                      "images": self.images, "images_with_patches": self.images_with_patches,
                      "tool_version": __version__},
            "source_ids": names,
            "source": [number[r[0]] for r in rows],
            "offset": [r[2] for r in rows],
            "shape": [[int(v) for v in r[3]] for r in rows],
            "grid": [[r[1].row, r[1].col] for r in rows],
            "box": [[int(v) for v in r[1].box] for r in rows],
            "var": [float(r[1].var) for r in rows],
            "mean": [float(r[1].mean) for r in rows],
        }
        with self._writing():
            os.replace(self._bin_tmp, self._bin)
        try:
            write_atomic(self.path, (json.dumps(index, separators=(",", ":")) + "\n").encode("utf-8"))
        except BaseException:
            self._bin.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Drop the temporary files."""
        with contextlib.suppress(OSError):
            self._fh.close()
        self._bin_tmp.unlink(missing_ok=True)


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


class RawNoiseBank(NoiseBank):
    """A build's own bank (:class:`RawBankWriter`): the JSON index at ``path`` loaded, the pixels
    memory-mapped (workers share the pages; nothing is read whole)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            index = json.loads(self.path.read_text(encoding="utf-8"))
            if index.get("format") != RAW_FORMAT:
                raise ValueError(f"format {index.get('format')!r}")
            names = index["source_ids"]
            self.offset = np.array(index["offset"], dtype=np.int64)
            self.shape = np.array(index["shape"], dtype=np.int32).reshape(-1, 2)
            self.source_id = [names[i] for i in index["source"]]
            self.grid = np.array(index["grid"], dtype=np.int32).reshape(-1, 2)
            self.box = np.array(index["box"], dtype=np.int32).reshape(-1, 4)
            self.var = np.array(index["var"], dtype=np.float64)
            self.mean = np.array(index["mean"], dtype=np.float64)
            self.attrs = dict(index["attrs"])
            size = int(index["size"])
            pixels = self.path.with_name(index["pixels"])
            self._raw = np.memmap(pixels, dtype=index["dtype"], mode="r", shape=(size,)) if size else np.zeros(0)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise NoiseBankError(f"{self.path}: not a readable noise bank ({exc})") from None
        if len(self.offset) == 0:
            raise NoiseBankError(f"{self.path}: the noise bank holds no patch")

    def patch(self, index: int) -> np.ndarray:
        h, w = (int(v) for v in self.shape[index])
        start = int(self.offset[index])
        return np.array(self._raw[start : start + h * w], dtype=np.float32).reshape(h, w)

    def close(self) -> None:
        mm = getattr(self._raw, "_mmap", None)
        self._raw = np.zeros(0)
        if mm is not None:
            with contextlib.suppress(BufferError):  # a view still in use keeps the map open until it is freed
                mm.close()


def open_bank(path: str | os.PathLike) -> NoiseBank:
    """The bank at ``path``: a build's raw bank (its ``.json`` index), else an HDF5 bank."""
    return RawNoiseBank(path) if Path(path).suffix == ".json" else NoiseBank(path)


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
        bank = _open_banks[key] = open_bank(path)
    return bank
