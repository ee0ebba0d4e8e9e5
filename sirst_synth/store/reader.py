"""What every dataset reader offers (folder or HDF5 file), and :func:`open_dataset`, which picks one."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sirst_synth.errors import DatasetError
from sirst_synth.store.dataset import Dataset, release_problem
from sirst_synth.store.layout import DEFAULT_SPLIT, PARTS


@runtime_checkable
class DatasetReader(Protocol):
    """A dataset the tool reads: split lists, images, masks, and a built dataset's manifest and record."""

    @property
    def root(self) -> Path:
        """The dataset folder or file."""

    @property
    def split(self) -> str:
        """The folder (or group) of the split lists read."""

    def split_file(self, part: str) -> Any:
        """Where the list of ``part`` lives (a path, or a name inside a file), for messages."""

    def ids(self, part: str) -> list[str]:
        """Ids of ``part`` ('train' or 'test') in list order."""

    def read_image(self, id_: str) -> np.ndarray:
        """uint8 image, (H, W) gray or (H, W, 3) RGB."""

    def read_gray(self, id_: str) -> np.ndarray:
        """float32 (H, W) gray image, 0..255."""

    def read_mask(self, id_: str) -> np.ndarray:
        """uint8 (H, W) mask; target pixels are > 0."""

    def manifest(self) -> dict[str, dict[str, str]] | None:
        """Manifest rows by id, or None for a source dataset."""

    def groups(self) -> dict[str, str] | None:
        """id -> group (the id of the group's k = 0 image), or None without a manifest."""

    def info(self) -> dict[str, Any] | None:
        """The build's ``sirst-synth.json``, or None for a source dataset."""


def open_dataset(
    root: str | Path, split: str | None = None, train_list: str = "train.txt", test_list: str = "test.txt",
    *, allow_hdf5: bool = True,
) -> DatasetReader:
    """Open a dataset: a folder in the layout above, or (``allow_hdf5``) an HDF5 file written by
    ``build --format h5``, read through :class:`sirst_synth.store.h5.reader.H5Dataset`.

    ``split`` defaults to :data:`DEFAULT_SPLIT` for a folder and to the file's own split for an
    HDF5 file; ``train_list`` and ``test_list`` name files of the folder layout (an HDF5 file
    holds its train and test lists itself). Raise :class:`DatasetError` when ``root`` is neither.
    """
    root = Path(root)
    if root.is_file():
        from sirst_synth.store.h5.reader import H5Dataset, is_hdf5_file

        if not is_hdf5_file(root):
            raise DatasetError(f"{root}: is a file but not an HDF5 dataset; give a dataset folder or a .h5 file")
        if not allow_hdf5:
            raise DatasetError(f"{root}: an HDF5 dataset can be trained on, not used as a source; give the dataset folder")
        return H5Dataset(root, split)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    ds = Dataset(root, DEFAULT_SPLIT if split is None else split, train_list, test_list)
    for part in PARTS:
        path = ds.split_file(part)
        if not path.is_file():
            released = release_problem(root)
            if released:
                raise DatasetError(released)
            found = sorted(p.parent.name + "/" + p.name for p in root.glob("*/*.txt"))
            hint = f"; split lists found: {', '.join(found)}" if found else ""
            raise DatasetError(f"{path}: split file not found{hint}")
    _refuse_release(ds)
    return ds


def _refuse_release(ds: Dataset) -> None:
    """Refuse a benchmark as released whose split lists were found (SIRST's ``idx_427/``): with
    its first train id's mask missing, say it needs ``sirst-synth import`` rather than list every id."""
    first = next(iter(ds.ids("train")), None)
    if first is not None and not ds.mask_path(first).exists():
        released = release_problem(ds.root)
        if released:
            raise DatasetError(released)
