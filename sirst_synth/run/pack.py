"""Storing images of a PNG build in the dataset HDF5 file with workers: :func:`store_in_workers`
(the images a ``build --format h5`` did not store as it went) and :func:`pack_dataset` (a whole
finished PNG build). The format is :mod:`sirst_synth.store.h5`."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sirst_synth.progress import Progress, silent
from sirst_synth.run.parallel import run_jobs
from sirst_synth.store.h5.stored import ImageFiles, StoredImage, stored_files
from sirst_synth.store.h5.writer import H5Writer

#: images decoded per round of workers: bounds the compressed chunks waiting in memory.
BLOCK = 512
#: images per worker task (joblib's per-task overhead is paid once per task).
TASK = 64


def _store_many(files: list[ImageFiles]) -> list[StoredImage]:
    return [stored_files(f) for f in files]


def _interleaved(files: list[ImageFiles]) -> list[ImageFiles]:
    """``files``, those that decode (not :attr:`ImageFiles.generated`) spread evenly among the
    others: the workers' decoding and the writing process's one dataset per image then overlap
    instead of taking turns (originals come first and last in manifest order)."""
    heavy = [f for f in files if not f.generated]
    light = [f for f in files if f.generated]
    order, taken = [], 0
    for k in range(len(files)):
        if taken < len(heavy) and (taken * len(files) < (k + 1) * len(heavy) or k - taken >= len(light)):
            order.append(heavy[taken])
            taken += 1
        else:
            order.append(light[k - taken])
    return order


def store_in_workers(files: list[ImageFiles], n_jobs: int, progress: Progress = silent) -> Iterator[StoredImage]:
    """The stored form of ``files`` (:func:`_interleaved` order), computed in workers a block at a
    time so few wait in memory."""
    files = _interleaved(files)
    with progress("pack", len(files)) as bar:
        for start in range(0, len(files), BLOCK):
            block = files[start:start + BLOCK]
            tasks = [block[i:i + TASK] for i in range(0, len(block), TASK)]
            for results in run_jobs(_store_many, tasks, n_jobs, "pack", silent):
                bar.update(len(results))
                yield from results


def pack_dataset(root: Path, out_file: Path, split: str, progress: Progress = silent, n_jobs: int = 1) -> dict[str, Any]:
    """Write the complete PNG build in ``root`` (split folder ``split``) as one HDF5 file.

    Every image is checked against the SHA-256 of ``manifest.csv``. ``out_file`` appears (or is
    replaced) only once the file is complete. Returns the file, image counts, size and seconds.
    """
    writer = H5Writer(out_file)
    try:
        return writer.finish(root, split, lambda files: store_in_workers(files, n_jobs, progress))
    except BaseException:
        writer.abort()
        raise
