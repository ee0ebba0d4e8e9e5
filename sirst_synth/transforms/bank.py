"""A noise bank held in memory, for the online transforms (docs/transforms.md).

:class:`Bank` reads a ``sample-noise`` file whole (its patches, their sources and grid cells) and
knows which patches an image may draw (:class:`sirst_synth.plan.draws.PatchSources`, the build's
rule). It refuses a bank holding a patch cut from a test image.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sirst_synth.errors import TransformError
from sirst_synth.plan.draws import PatchSources
from sirst_synth.store.dataset import read_id_list
from sirst_synth.store.noisebank import NoiseBank


class Bank:
    """Every patch of a noise bank in memory: float32 gray ``patch(i)``, ``source_id[i]``,
    ``grid[i]`` (row, col of its grid cell); ``name`` says where it came from (for messages)."""

    def __init__(self, pixels: np.ndarray, offset: np.ndarray, shape: np.ndarray, source_id: list[str],
                 grid: np.ndarray, attrs: dict[str, Any] | None = None, name: str = "noise bank") -> None:
        self.pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        self.offset = np.asarray(offset, dtype=np.int64)
        self.shape = np.asarray(shape, dtype=np.int64).reshape(-1, 2)
        self.source_id = list(source_id)
        self.grid = np.asarray(grid, dtype=np.int64).reshape(-1, 2)
        self.attrs = dict(attrs or {})
        self.name = name
        self.sources = PatchSources(self.source_id)
        self._candidates: dict[str, np.ndarray] = {}
        self._cell = {(s, int(r), int(c)): i for i, (s, (r, c)) in enumerate(zip(self.source_id, self.grid))}
        if not len(self.source_id):
            raise TransformError(f"{name}: the noise bank holds no patch")

    @classmethod
    def load(cls, bank: BankLike, test_ids: Iterable[str] | None = None) -> Bank:
        """``bank`` in memory (a path is read whole, an open :class:`NoiseBank` too; a :class:`Bank`
        is used as it is), checked against ``test_ids`` (default: the test list of the source the
        bank records, when that file is there)."""
        if isinstance(bank, Bank):
            loaded = bank
        elif isinstance(bank, NoiseBank):
            loaded = cls._from_noise_bank(bank)
        else:
            with NoiseBank(bank) as opened:
                loaded = cls._from_noise_bank(opened)
        loaded.check_not_from(recorded_test_ids(loaded.attrs) if test_ids is None else test_ids)
        return loaded

    @classmethod
    def _from_noise_bank(cls, bank: NoiseBank) -> Bank:
        return cls(bank._pixels[()], bank.offset, bank.shape, bank.source_id, bank.grid, bank.attrs, str(bank.path))

    def __len__(self) -> int:
        return len(self.source_id)

    def patch(self, index: int) -> np.ndarray:
        """The float32 (h, w) gray patch number ``index`` (a read-only view)."""
        h, w = (int(v) for v in self.shape[index])
        start = int(self.offset[index])
        view = self.pixels[start:start + h * w].reshape(h, w)
        view.flags.writeable = False
        return view

    def candidates(self, source_id: str) -> np.ndarray:
        """Bank indices an image of ``source_id`` may draw (:meth:`PatchSources.candidates`), kept per source."""
        found = self._candidates.get(source_id)
        if found is None:
            found = self._candidates[source_id] = self.sources.candidates(source_id)
        return found

    def index_of(self, source_id: str, row: int, col: int) -> int:
        """The index of the patch cut from grid cell (``row``, ``col``) of ``source_id``."""
        try:
            return self._cell[(source_id, int(row), int(col))]
        except KeyError:
            raise TransformError(f"{self.name}: no patch from grid cell ({row}, {col}) of {source_id!r}") from None

    def check_not_from(self, ids: Iterable[str] | None, what: str = "test") -> None:
        """Raise :class:`TransformError` when a patch was cut from one of ``ids`` (test images)."""
        if ids is None:
            return
        bad = sorted(set(self.source_id) & set(ids))
        if bad:
            shown = ", ".join(repr(b) for b in bad[:3]) + (" ..." if len(bad) > 3 else "")
            raise TransformError(
                f"{self.name}: holds patches cut from {len(bad)} {what} image(s) ({shown}); a noise bank must hold "
                "train images only (docs/method.md section 2): sample it from the train split")


def recorded_test_ids(attrs: dict[str, Any]) -> list[str] | None:
    """The test ids of the source a ``sample-noise`` bank records (``source``, ``split``), when its
    ``test.txt`` is there; else None (nothing to check against)."""
    source, split = attrs.get("source"), attrs.get("split")
    if not source or not split:
        return None
    path = Path(str(source)) / str(split) / "test.txt"
    return read_id_list(path) if path.is_file() else None


#: what a transform takes as its bank: a ``sample-noise`` file, an open :class:`NoiseBank`, a :class:`Bank`
BankLike = str | os.PathLike[str] | NoiseBank | Bank
