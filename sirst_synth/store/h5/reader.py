"""Reading the dataset HDF5 file (specified in docs/output.md, "The HDF5 file"): :class:`H5Dataset`,
a :class:`sirst_synth.store.reader.DatasetReader`. It opens its HDF5 handle lazily in each
process, so it works in DataLoader workers, and reads this format version only."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sirst_synth.errors import DatasetError
from sirst_synth.method.gray import float_gray
from sirst_synth.store.h5.format import FORMAT, FORMAT_VERSION, GRAY, GRAY_AS_RGB, RGB, up_unfilter
from sirst_synth.store.layout import MASKS
from sirst_synth.store.manifest import COLUMNS


def _strings(dset: h5py.Dataset) -> list[str]:
    return dset.asstr()[()].tolist()


class H5Dataset:
    """A dataset file written by ``build --format h5`` (or :func:`~sirst_synth.run.pack.pack_dataset`),
    read like :class:`sirst_synth.store.dataset.Dataset`.

    ``root`` is the file. ``split`` defaults to the file's own. The HDF5 handle is opened on
    first use in each process (h5py handles must not cross a fork) and dropped when pickled.
    """

    def __init__(self, path: str | os.PathLike, split: str | None = None) -> None:
        self.root = Path(path)
        self._file: h5py.File | None = None
        self._pid = -1
        f = self._h5()
        fmt, version = f.attrs.get("format"), f.attrs.get("format_version")
        if fmt != FORMAT:
            raise DatasetError(f"{self.root}: an HDF5 file but not a sirst-synth dataset (format {fmt!r})")
        if version is None or int(version) != FORMAT_VERSION:
            raise DatasetError(f"{self.root}: dataset format version {version}; this sirst-synth reads version "
                               f"{FORMAT_VERSION}")
        self.split = str(f.attrs["split"]) if split is None else split
        self._layout: dict[str, int] | None = None
        have = sorted(f["splits"]) if "splits" in f else []
        if self.split not in have:
            raise DatasetError(f"{self.root}: no split {self.split!r} in the file; it has: {', '.join(have) or 'none'}")

    def _h5(self) -> h5py.File:
        """This process's open handle (a forked child opens its own)."""
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.root, "r")
            except OSError as exc:
                raise DatasetError(f"{self.root}: not a readable HDF5 file ({exc})") from None
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_pid": -1}

    def _image_layout(self, id_: str) -> int:
        """:data:`GRAY`, :data:`GRAY_AS_RGB` or :data:`RGB` (the layouts read once per process)."""
        if self._layout is None:
            f = self._h5()
            self._layout = dict(zip(_strings(f["ids"]), f["image_layout"][()].tolist()))
        return self._layout.get(id_, GRAY)

    def __repr__(self) -> str:
        return f"H5Dataset({str(self.root)!r}, split={self.split!r})"

    def info(self) -> dict[str, Any]:
        """The build's ``sirst-synth.json``."""
        return json.loads(self._h5().attrs["info"])

    def split_file(self, part: str) -> str:
        """Where the list of ``part`` lives, for messages: ``FILE:splits/<split>/<part>``."""
        return f"{self.root}:splits/{self.split}/{part}"

    def ids(self, part: str) -> list[str]:
        """Ids of ``part`` ('train' or 'test') in list order."""
        dset = self._h5()[f"splits/{self.split}"].get(part)
        if dset is None:
            raise DatasetError(f"{self.split_file(part)}: split list not found")
        return _strings(dset)

    def _dataset(self, kind: str, id_: str) -> h5py.Dataset:
        dset = self._h5()[kind].get(id_)
        if not isinstance(dset, h5py.Dataset):
            raise DatasetError(f"{self.root}: no {kind[:-1]} for id {id_!r}")
        return dset

    def _gray_or_colour(self, id_: str) -> tuple[np.ndarray, int]:
        """The image's pixels, (H, W) or (H, W, 3), and its layout; R=G=B stays (H, W) here."""
        stored = self._dataset("images", id_)[()]
        layout = self._image_layout(id_)
        pixels = up_unfilter(np.ascontiguousarray(stored[:, 1:]))
        return (pixels.reshape(pixels.shape[0], -1, 3) if layout == RGB else pixels), layout

    def read_image(self, id_: str) -> np.ndarray:
        """uint8 image, (H, W) gray or (H, W, 3) RGB, as the PNG build's."""
        pixels, layout = self._gray_or_colour(id_)
        return np.repeat(pixels[:, :, None], 3, axis=2) if layout == GRAY_AS_RGB else pixels

    def read_gray(self, id_: str) -> np.ndarray:
        """float32 (H, W) gray image, 0..255 (an R=G=B image's gray is read without expanding it)."""
        return float_gray(self._gray_or_colour(id_)[0])

    def read_mask(self, id_: str) -> np.ndarray:
        """uint8 (H, W) mask; target pixels are > 0."""
        stored = self._dataset(MASKS, id_)[()]
        return np.ascontiguousarray(stored[:, 1:])

    def manifest(self) -> dict[str, dict[str, str]]:
        """Manifest rows by id (every column of ``manifest.COLUMNS``), in manifest order."""
        group = self._h5()["manifest"]
        columns = {c: _strings(group[c]) for c in COLUMNS if c in group}
        if "id" not in columns:
            raise DatasetError(f"{self.root}: the manifest has no 'id' column")
        return {id_: {c: columns[c][i] if c in columns else "" for c in COLUMNS}
                for i, id_ in enumerate(columns["id"])}

    def groups(self) -> dict[str, str]:
        """id -> group (the id of the group's k = 0 image)."""
        return {id_: row["group"] or id_ for id_, row in self.manifest().items()}

    def close(self) -> None:
        """Close this process's handle (reopened on next use)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None


def is_hdf5_file(path: str | os.PathLike) -> bool:
    """True for an existing file with the HDF5 signature."""
    path = Path(path)
    return path.is_file() and h5py.is_hdf5(path)
