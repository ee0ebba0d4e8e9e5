"""Free space, checked before a command writes: a full disk is found before the work starts,
in one line naming the output, the space the run needs there and the space it has.

What a run needs is estimated from the source's file sizes and the plan (:class:`SourceSizes`,
:meth:`~sirst_synth.run.stages.base.DatasetStage.space_needed`): each copied image and mask takes
what its file takes on disk, and each generated image the mean of the train images' (image + mask).
Every file the run writes lies inside its output (its temporary files and noise bank included:
:func:`~sirst_synth.store.layout.scratch_dir`), so one file system is checked.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sirst_synth.errors import OutputError
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.layout import PARTS, id_problem

#: the unit a file takes on disk (ext4, xfs, APFS, NTFS: 4 KiB)
BLOCK = 4096


def on_disk(size: int) -> int:
    """Bytes a file of ``size`` bytes takes: whole blocks."""
    return -(-size // BLOCK) * BLOCK


@dataclass(frozen=True)
class SourceSizes:
    """The on-disk bytes of a source's listed files (those that exist), per part."""

    #: image + mask bytes per part
    bytes: dict[str, int]
    #: ids found per part
    ids: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    @property
    def train_pair(self) -> int:
        """The mean bytes of one train image with its mask."""
        return self.bytes.get("train", 0) // max(self.ids.get("train", 0), 1)


def source_sizes(ds: Dataset) -> SourceSizes:
    """Stat every listed image and mask (a missing file or list counts nothing: the source check reports it)."""
    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}
    for part in PARTS:
        try:
            ids = ds.ids(part)
        except (OSError, ValueError):
            ids = []
        total = found = 0
        for id_ in ids:
            if id_problem(id_):
                continue
            try:
                total += on_disk(os.stat(ds.image_path(id_)).st_size) + on_disk(os.stat(ds.mask_path(id_)).st_size)
                found += 1
            except OSError:
                continue
        sizes[part], counts[part] = total, found
    return SourceSizes(sizes, counts)


def used_by(folders: list[Path]) -> int:
    """On-disk bytes of the files under ``folders`` (an earlier run's, which a resume keeps and --force replaces)."""
    total = 0
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    continue
    return total


def free_bytes(path: Path) -> int:
    """Free bytes on the file system of ``path`` (or of its nearest existing folder)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def human(size: float) -> str:
    """``1.2 GB``, ``340 MB`` (decimal units, as ``df -H``)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit in ("bytes", "kB") or size >= 100 else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError


def check_space(out: Path, need: int, what: str, named: Path | None = None) -> None:
    """Refuse to start when ``out``'s file system has less than ``need`` bytes free; the line names
    ``named`` (the output a user gave, when ``out`` is its staging folder) or ``out``."""
    free = free_bytes(out)
    if need > free:
        raise OutputError(f"{named or out}: {what} needs about {human(need)} of free space there, and {human(free)} "
                          "is free; free some space or choose another -o")
