"""The dataset layout that DNANet, BasicIRSTD and the SIRST-5K release read (docs/method.md section 1).

    ROOT/images/<id>.png     8-bit gray or RGB image
    ROOT/masks/<id>.png      same id, same size; target pixels > 0
    ROOT/<split>/train.txt   one id per line (LF or CRLF, final newline optional)
    ROOT/<split>/test.txt
    ROOT/manifest.csv        (built datasets only) provenance, one row per image

:class:`Dataset` is the one reader of that layout (a :class:`sirst_synth.store.reader.DatasetReader`):
the build, the stage commands and the trainer use it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sirst_synth.errors import DatasetError
from sirst_synth.method.gray import float_gray
from sirst_synth.store import imageio
from sirst_synth.store.layout import DEFAULT_SPLIT, MANIFEST_NAME, image_name, mask_name
from sirst_synth.store.manifest import COLUMNS
from sirst_synth.store.record import read_record


def read_id_list(path: Path) -> list[str]:
    """Read a split list: one id per line, blank lines ignored, LF or CRLF, no final newline needed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: split file not found") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


#: benchmarks as their authors release them, which ``sirst-synth import FORMAT`` converts: FORMAT and
#: what gives it away
RELEASES = {
    "sirst": "masks named <id>_pixels0.png",
    "sirst-v2": "mixed/ and annotations/masks/",
    "irstd-1k": "IRSTD1k_Img/ and IRSTD1k_Label/",
    "folders": "per-part folders test/images/ and train/images/ (or trainval/)",
}


def released_format(root: Path) -> str | None:
    """The ``import`` FORMAT of a folder that holds a benchmark as its authors release it rather
    than the DNANet layout (SIRST's ``masks/<id>_pixels0.png`` without ``masks/<id>.png``,
    SIRST-V2, IRSTD-1k, per-part folders), or None. Looks at names only."""
    masks = root / "masks"
    if masks.is_dir():
        first = next(iter(masks.glob("*_pixels0.png")), None)
        if first is not None and not (masks / first.name.replace("_pixels0.png", ".png")).exists():
            return "sirst"
    if (root / "mixed").is_dir() and (root / "annotations" / "masks").is_dir():
        return "sirst-v2"
    if (root / "IRSTD1k_Img").is_dir() and (root / "IRSTD1k_Label").is_dir():
        return "irstd-1k"
    if (root / "test" / "images").is_dir() and any((root / n / "images").is_dir() for n in ("train", "trainval")):
        return "folders"
    return None


def release_problem(root: Path) -> str | None:
    """One line saying that ``root`` holds a benchmark as released and how to convert it
    (``sirst-synth import``), or None when it does not look like one."""
    fmt = released_format(root)
    if fmt is None:
        return None
    return (f"{root}: a benchmark as its authors release it ({RELEASES[fmt]}), not the DNANet layout; convert it once "
            f"with 'sirst-synth import {fmt} {root} -o OUT' and use OUT")


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
        return float_gray(self.read_image(id_))

    def read_mask(self, id_: str) -> np.ndarray:
        """uint8 (H, W) mask; target pixels are > 0."""
        return imageio.read_mask(self.mask_path(id_))

    def info(self) -> dict[str, Any] | None:
        """The build's ``sirst-synth.json``, or None for a dataset without one (a source)."""
        return read_record(self.root)

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
