"""The dataset layout that DNANet, BasicIRSTD and the SIRST-5K release read (SPEC section 1).

    ROOT/images/<id>.png     8-bit gray or RGB image
    ROOT/masks/<id>.png      same id, same size; target pixels > 0
    ROOT/<split>/train.txt   one id per line (LF or CRLF, final newline optional)
    ROOT/<split>/test.txt
    ROOT/manifest.csv        (built datasets only) provenance, one row per image

This is the one reader of that layout: the build, the stage commands and the trainer use it.
:func:`open_dataset` also opens a build packed into one HDF5 file (:mod:`sirst_synth.store.h5store`).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sirst_synth.errors import DatasetError
from sirst_synth.store import imageio
from sirst_synth.store.layout import (
    DEFAULT_SPLIT,
    MANIFEST_NAME,
    PARTS,
    image_name,
    mask_name,
)
from sirst_synth.store.manifest import COLUMNS

if TYPE_CHECKING:
    from sirst_synth.store.h5store import H5Dataset





def read_id_list(path: Path) -> list[str]:
    """Read a split list: one id per line, blank lines ignored, LF or CRLF, no final newline needed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: split file not found") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Dataset:
    """A dataset on disk in the DNANet layout.

    ``split`` names the folder of the split lists; ``list_names`` maps each part (train, test)
    to its file name in that folder, for layouts such as SIRST's ``idx_427/trainval.txt`` or
    BasicIRSTD's ``img_idx/train_<NAME>.txt``.
    """

    root: Path
    split: str = DEFAULT_SPLIT
    train_list: str = "train.txt"
    test_list: str = "test.txt"

    def split_file(self, part: str) -> Path:
        """Path of the list of ``part`` ('train' or 'test')."""
        name = {"train": self.train_list, "test": self.test_list}[part]
        return self.root / self.split / name

    def ids(self, part: str) -> list[str]:
        """Ids of ``part`` in file order."""
        return read_id_list(self.split_file(part))

    def image_path(self, id_: str) -> Path:
        return self.root / image_name(id_)

    def mask_path(self, id_: str) -> Path:
        return self.root / mask_name(id_)

    def read_image(self, id_: str) -> np.ndarray:
        """uint8 image, (H, W) gray or (H, W, 3) RGB, in the source's channel layout."""
        return imageio.read_image(self.image_path(id_))

    def read_gray(self, id_: str) -> np.ndarray:
        """float32 (H, W) gray image, 0..255."""
        return imageio.to_gray(self.read_image(id_))

    def read_mask(self, id_: str) -> np.ndarray:
        """uint8 (H, W) mask; target pixels are > 0."""
        return imageio.read_mask(self.mask_path(id_))

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def manifest(self) -> dict[str, dict[str, str]] | None:
        """Manifest rows by id, or None for a dataset without ``manifest.csv`` (a source)."""
        if not self.manifest_path.exists():
            return None
        with open(self.manifest_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "id" not in (reader.fieldnames or ()):
                raise DatasetError(f"{self.manifest_path}: no 'id' column")
            return {row["id"]: {c: row.get(c) or "" for c in COLUMNS} for row in reader}

    def groups(self) -> dict[str, str] | None:
        """id -> group (the id of the group's k = 0 image), or None without a manifest."""
        rows = self.manifest()
        if rows is None:
            return None
        return {id_: row["group"] or id_ for id_, row in rows.items()}


def open_dataset(
    root: str | Path, split: str | None = None, train_list: str = "train.txt", test_list: str = "test.txt",
    *, allow_hdf5: bool = True,
) -> Dataset | H5Dataset:
    """Open a dataset: a folder in the layout above, or (``allow_hdf5``) an HDF5 file written by
    ``build --format h5``, read through :class:`sirst_synth.store.h5store.H5Dataset`.

    ``split`` defaults to :data:`DEFAULT_SPLIT` for a folder and to the file's own split for an
    HDF5 file; ``train_list`` and ``test_list`` name files of the folder layout (an HDF5 file
    holds its train and test lists itself). Raise :class:`DatasetError` when ``root`` is neither.
    """
    root = Path(root)
    if root.is_file():
        from sirst_synth.store.h5store import H5Dataset, is_hdf5_file

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
            found = sorted(p.parent.name + "/" + p.name for p in root.glob("*/*.txt"))
            hint = f"; split lists found: {', '.join(found)}" if found else ""
            raise DatasetError(f"{path}: split file not found{hint}")
    return ds
