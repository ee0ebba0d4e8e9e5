"""The output folder: refusing unsafe targets, and writing the files that complete a dataset.

Images and masks are written by the workers. The split lists, ``manifest.csv`` and, last of all,
``sirst-synth.json`` (the completion mark) are written here only once every image is in place,
so an interrupted build never looks complete.
"""
from __future__ import annotations

from sirst_synth.errors import SirstSynthError

import json
import shutil
from pathlib import Path

from sirst_synth import __version__
from sirst_synth.dataset import INFO_NAME, MANIFEST_NAME, Dataset
from sirst_synth.imageio import write_atomic
from sirst_synth.manifest import Row, write_manifest


class OutputError(SirstSynthError):
    """An output folder the tool refuses to write."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(out: Path, src: Path, force: bool) -> None:
    """Refuse the source (or a folder inside it), a file, and a non-empty folder unless ``force``.

    Writes nothing, so commands call it before reading their sources.
    """
    out_r, src_r = out.resolve(), src.resolve()
    if _inside(out_r, src_r):
        raise OutputError(f"{out}: output folder is the source or inside it ({src}); choose another -o")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise OutputError(f"{out}: output folder is not empty; use --force to replace its contents")
        if _inside(src_r, out_r):
            raise OutputError(f"{out}: --force would clear a folder that holds the source {src}")


def check_output_file(out: Path, src: Path, force: bool) -> None:
    """Refuse a file output inside the source, a folder, and an existing file unless ``force``;
    create its parent folder."""
    if _inside(out.resolve(), src.resolve()):
        raise OutputError(f"{out}: output file is inside the source ({src}); choose another -o")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name such as noise.h5")
    if out.exists() and not force:
        raise OutputError(f"{out}: exists; use --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)


def prepare_output(out: Path, src: Path, split: str, force: bool) -> None:
    """Check ``out`` again, clear what a previous build wrote there (with ``force``), and create
    images/ and masks/."""
    check_output(out, src, force)
    for name in ("images", "masks", split, MANIFEST_NAME, INFO_NAME):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)


def write_id_list(path: Path, ids: list[str]) -> None:
    """One id per line, LF, final newline."""
    write_atomic(path, "".join(f"{i}\n" for i in ids).encode("utf-8"))


def finish_output(out: Path, split: str, rows: list[Row], info: dict) -> Dataset:
    """Write split lists and manifest from ``rows`` (in order), then ``sirst-synth.json``."""
    (out / split).mkdir(exist_ok=True)
    for part in ("train", "test"):
        write_id_list(out / split / f"{part}.txt", [r["id"] for r in rows if r["split"] == part])
    write_manifest(out / MANIFEST_NAME, rows)
    info = {"tool": "sirst-synth", "version": __version__, **info}
    write_atomic(out / INFO_NAME, (json.dumps(info, indent=2, sort_keys=False) + "\n").encode("utf-8"))
    return Dataset(out, split)


def count_kinds(rows: list[Row]) -> dict[str, int]:
    """Images per split and per kind of the train split."""
    counts = {"train": 0, "test": 0, "original": 0, "displaced": 0, "negative": 0}
    for r in rows:
        counts[r["split"]] += 1
        if r["split"] == "train":
            counts[r["kind"]] += 1
    return counts
