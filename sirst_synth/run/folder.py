"""The output folder: refusing unsafe targets, preparing it for a fresh or resumed build, and
writing the files that complete a dataset.

Images and masks are written by the workers. The split lists, ``manifest.csv`` and, last of all,
``sirst-synth.json`` (the completion mark) are written here only once every image is in place,
so an interrupted build never looks complete. Until then the folder holds the build's state
(:mod:`sirst_synth.run.state`, :mod:`sirst_synth.run.journal`), from which ``--resume`` finishes it.
"""
from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sirst_synth.errors import OutputError, ResumeError
from sirst_synth.run.owned import is_tool_file, refuse_foreign, remove_owned, survey
from sirst_synth.run.state import RunMode, RunRecord, decide, remove_state, write_run
from sirst_synth.store.fingerprint import ImageSums, gray_sums, norm_from_sums
from sirst_synth.store.imageio import write_atomic
from sirst_synth.store.layout import (
    INFO_NAME,
    LIST_NAMES,
    LOCK_NAME,
    MANIFEST_NAME,
    PIXEL_FOLDERS,
    image_name,
    scratch_dir,
    state_dir,
    temp_files,
    temp_path,
)
from sirst_synth.store.manifest import COLUMNS, SUMS, Row
from sirst_synth.store.record import record_path, record_text


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or inside it (both resolved)."""
    return path == folder or folder in path.parents


def check_output(out: Path, src: Path, force: bool, resume: bool = False, keep: Path | None = None) -> None:
    """Refuse the source (or a folder inside it), a file, and a non-empty folder unless ``force``
    or (for an interrupted or complete build of this tool) ``resume``. ``force`` replaces only what
    the tool wrote (:mod:`sirst_synth.run.owned`): a folder holding foreign files and no record of
    the tool is refused, and so are foreign files in ``images/`` or ``masks/``, where a build writes.

    Writes nothing, so commands call it before reading their sources. ``keep``: the running build's
    scratch folder, which does not count.
    """
    out_r, src_r = out.resolve(), src.resolve()
    if inside(out_r, src_r):
        raise OutputError(f"{out}: output folder is the source or inside it ({src}); choose another -o")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.exists() and any(p.name != LOCK_NAME and p != keep for p in out.iterdir()):  # the lock: see run/lock.py
        found = survey(out)
        interrupted = state_dir(out).is_dir() or (scratch_dir(out) != keep and scratch_dir(out).is_dir())
        if resume:
            if not interrupted and not (out / INFO_NAME).is_file():
                raise ResumeError(f"{out}: not a build of this tool (no {state_dir(out).name}/ or {INFO_NAME}); "
                                  "nothing to resume")
        else:
            refuse_foreign(found, "choose another -o (--force replaces only what sirst-synth wrote)")
            if not force:
                raise OutputError(f"{out}: {not_empty(out, interrupted)}")
            among_images = found.foreign_in(PIXEL_FOLDERS)
            if among_images:
                raise OutputError(f"{out}: --force keeps files sirst-synth did not write, and {len(among_images)} lie "
                                  f"in its image folders ({', '.join(among_images[:3])}); move them or choose another -o")
        if inside(src_r, out_r):
            raise OutputError(f"{out}: --force would clear a folder that holds the source {src}")


def finished(folder: bool = True) -> str:
    """What to do with a finished build a plain run refuses, the harmless option first."""
    again = "--force builds it again" + (" (replacing what sirst-synth wrote there; other files stay)" if folder else "")
    return f"holds a finished build; --resume with the same options checks it and has nothing to do, {again}"


def not_empty(out: Path, interrupted: bool) -> str:
    """Why a plain run refuses the non-empty output ``out``, and what to do, the harmless option first."""
    if interrupted:
        return "output folder is not empty; an interrupted build: use --resume to finish it"
    if (out / INFO_NAME).is_file():
        return finished()
    return "output folder is not empty; use --force to replace what sirst-synth wrote there (other files stay)"


def check_output_file(out: Path, src: Path, force: bool, owned_only: bool = False) -> None:
    """Refuse a file output inside the source, a folder, and an existing file unless ``force``;
    with ``owned_only`` (an HDF5 output), ``force`` replaces only an HDF5 file of this tool.

    Writes nothing: the caller creates the parent folder when it starts writing."""
    if inside(out.resolve(), src.resolve()):
        raise OutputError(f"{out}: output file is inside the source ({src}); choose another -o")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name such as noise.h5")
    if out.exists() and owned_only and not is_tool_file(out):
        raise OutputError(f"{out}: exists and is not an HDF5 file written by sirst-synth; choose another -o "
                          "(--force replaces only what sirst-synth wrote)")
    if out.exists() and not force:
        raise OutputError(f"{out}: exists; use --force to replace it")


def make_folder(path: Path) -> None:
    """mkdir -p with one clear line when it cannot be made."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create folder ({exc.strerror})") from None


def start_folder(out: Path, src: Path, split: str, run: RunRecord, force: bool, resume: bool,
                 finished: dict[str, Any] | None = None, keep: Path | None = None, named: Path | None = None) -> RunMode:
    """Make the folder ``out`` ready for ``run`` and return how it starts (:func:`~sirst_synth.run.state.decide`:
    ``finished`` and ``named`` as there): a fresh run clears what the tool wrote there (but the
    folder ``keep``, the running build's scratch folder) and records ``run``; a resumed one drops
    the temporary files of writes cut short."""
    check_output(out, src, force, resume, keep)
    mode = decide(out, run, resume, finished, named)
    if mode is RunMode.FRESH:
        clear_for_build(out, split, keep)
        make_pixel_folders(out)
        write_run(out, run)
    elif mode is RunMode.RESUMED:
        remove_temp_files(out)
        make_pixel_folders(out)
    return mode


def clear_for_build(out: Path, split: str, keep: Path | None = None) -> None:
    """Remove what the tool wrote in ``out`` (:func:`~sirst_synth.run.owned.remove_owned`) before a
    fresh build, but the folder ``keep``; foreign files stay, except split lists the build would
    overwrite: refused."""
    found = survey(out)
    lists = [rel for rel in found.foreign if rel in (f"{split}/{name}" for name in LIST_NAMES.values())]
    if lists:
        raise OutputError(f"{out}: --force keeps files sirst-synth did not write, and {out / lists[0]} is one the "
                          "build writes; move it or choose another -o")
    if keep is not None:
        kept = keep.relative_to(out).as_posix() + "/"
        found.owned = [rel for rel in found.owned if not rel.startswith(kept)]
    remove_owned(found)


def remove_scratch(out: Path) -> None:
    """Delete the scratch folder of ``out`` (:func:`~sirst_synth.store.layout.scratch_dir`), whatever it holds."""
    shutil.rmtree(scratch_dir(out), ignore_errors=True)


def make_pixel_folders(out: Path) -> None:
    """The image and mask folders of a build (kept when they exist)."""
    for name in PIXEL_FOLDERS:
        make_folder(out / name)


def remove_temp_files(out: Path) -> int:
    """Delete the temporary files of writes cut short (``.<name>.<pid>.tmp`` in ``out`` and the
    folders in it: images, masks, the split lists, the manifest); return how many."""
    removed = 0
    for path in [*temp_files(out), *(p for folder in out.iterdir() if folder.is_dir() for p in temp_files(folder))]:
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class _AtomicText:
    """A text file written under a temporary name and renamed by :meth:`commit`."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = temp_path(path)
        self.fh = open(self.tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115  (closed by commit or abort)

    def commit(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def finish_output(out: Path, split: str, rows: Iterable[Row], info: dict,
                  norm: Callable[[list[tuple[str, ImageSums | None]]], dict[str, Any]] | None = None) -> dict[str, int]:
    """Stream ``rows`` (in order) into the split lists and the manifest, then write
    ``sirst-synth.json`` with ``norm`` of the train images (``img_norm_cfg``, from each row's id and
    the sums it carries) and the counts, then drop the build state. Return the counts."""
    make_folder(out / split)
    files = [_AtomicText(out / split / "train.txt"), _AtomicText(out / split / "test.txt"),
             _AtomicText(out / MANIFEST_NAME)]
    lists = {"train": files[0].fh, "test": files[1].fh}
    counts = {"train": 0, "test": 0, "original": 0, "displaced": 0, "negative": 0}
    train: list[tuple[str, ImageSums | None]] = []
    try:
        manifest = csv.writer(files[2].fh, lineterminator="\n")
        manifest.writerow(COLUMNS)
        for row in rows:
            lists[row["split"]].write(row["id"] + "\n")
            manifest.writerow([row[c] for c in COLUMNS])
            _count(counts, row)
            if row["split"] == "train":
                train.append((row["id"], row.get(SUMS)))
        for f in files:
            f.commit()
    except BaseException:
        for f in files:
            f.abort()
        raise
    if norm is not None:
        info = {**info, "img_norm_cfg": norm(train)}
    write_atomic(record_path(out), record_text({**info, "counts": counts}).encode("utf-8"))
    remove_state(out)
    return counts


def _image_sums(ids: list[str], root: str) -> list[ImageSums]:
    from sirst_synth.method.gray import method_gray
    from sirst_synth.store.imageio import read_image

    return [gray_sums(method_gray(read_image(Path(root) / image_name(id_)))) for id_ in ids]


def train_norm(out: Path, train: list[tuple[str, ImageSums | None]], n_jobs: int, batch: int = 64) -> dict[str, Any]:
    """``img_norm_cfg`` (mean and std of every gray pixel) of the train images written in ``out``:
    from the gray sums their rows carry (the built-in stages' rows do), reading in workers only the
    images whose rows carry none (a stage that does not compute them). Pooled exactly, so it does
    not depend on ``n_jobs``."""
    from sirst_synth.progress import silent
    from sirst_synth.run.parallel import run_jobs

    missing = [id_ for id_, sums in train if sums is None]
    batches = [missing[i:i + batch] for i in range(0, len(missing), batch)]
    read = iter([s for found in run_jobs(_image_sums, batches, n_jobs, "statistics", silent, str(out)) for s in found])
    return {"part": "train", **norm_from_sums([sums if sums is not None else next(read) for _, sums in train])}


def _count(counts: dict[str, int], row: Row) -> None:
    counts[row["split"]] += 1
    if row["split"] == "train":
        counts[row["kind"]] += 1


def count_kinds(rows: Iterable[Row]) -> dict[str, int]:
    """Images per split and per kind of the train split."""
    counts = {"train": 0, "test": 0, "original": 0, "displaced": 0, "negative": 0}
    for r in rows:
        _count(counts, r)
    return counts

