"""What sirst-synth wrote in a folder: the one rule every ``--force`` follows (``build``, ``displace``,
``negaug``, ``build --format h5``, ``sample-noise``, ``build --layout``, ``import``, ``export``).

``--force`` replaces only files the tool wrote, and it knows them from its records, never from a
folder's name:

- a build (``sirst-synth.json``, ``manifest.csv``): each manifest id's image and mask, the lists
  of the record's split, the manifest and the record;
- an interrupted build (``.sirst-synth-partial/``): every file in ``images/`` and ``masks/`` (a
  build starts only where they hold nothing foreign; the last images a killed run wrote are in no
  journal yet) and the lists of the split its ``run.json`` names;
- an import (``import.json``, ``import-manifest.csv``): each id's image and mask, the lists of each
  split the record names, and both records;
- an export or ``build --layout`` (``sirst-synth-export.json``): the files its ``written`` list names;
- by name: the tool's hidden entries at the top (``.sirst-synth*``: run log, build state, the scratch
  folder a build samples its noise bank in while it checks its source) and its
  temporary files anywhere (``.<name>.<pid>.tmp``). The lock (``.sirst-synth-lock``) is the running
  command's own and is never counted nor removed here.

Every other file is *foreign*, and ``--force`` keeps it. A folder that holds foreign files and no
record of the tool is refused, with or without ``--force``, in one line saying what is there. A
folder left empty once the tool's files are removed is removed too (it held only those).
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sirst_synth.errors import OutputError
from sirst_synth.run.state import interrupted_split
from sirst_synth.store.layout import (
    EXPORT_RECORD_NAME,
    IMPORT_MANIFEST_NAME,
    IMPORT_RECORD_NAME,
    INFO_NAME,
    LIST_NAMES,
    LOCK_NAME,
    MANIFEST_NAME,
    PIXEL_FOLDERS,
    STATE_PREFIX,
    id_problem,
    image_name,
    is_temp_name,
    mask_name,
    state_dir,
)

#: the records that mark an output complete: removed first, written last
COMPLETION_MARKS = (INFO_NAME, IMPORT_RECORD_NAME, EXPORT_RECORD_NAME)
#: files listed of a folder without a record of the tool (``-o ~`` is not walked whole to refuse it)
SHALLOW = 1000


@dataclass
class Survey:
    """The files of a folder, sorted into the tool's (named by its records) and foreign ones."""

    root: Path
    #: the records of the tool found at the top (file or folder names)
    records: list[str] = field(default_factory=list)
    #: relative POSIX paths of the files the tool wrote
    owned: list[str] = field(default_factory=list)
    #: relative POSIX paths of every other file (a symbolic link counts as a file)
    foreign: list[str] = field(default_factory=list)
    #: a folder without a record of the tool is listed only up to SHALLOW files (it is refused anyway)
    partial: bool = False

    def foreign_in(self, folders: Iterable[str]) -> list[str]:
        """The foreign files inside the top-level ``folders``."""
        tops = set(folders)
        return [rel for rel in self.foreign if rel.split("/", 1)[0] in tops]

    def describe_foreign(self, shown: int = 5) -> str:
        """The foreign content as top-level entries: ``IRDST/ (12 files), notes.txt``."""
        tops: dict[str, int] = {}
        for rel in self.foreign:
            top, _, rest = rel.partition("/")
            key = top + "/" if rest else top
            tops[key] = tops.get(key, 0) + 1
        plus = "+" if self.partial else ""
        parts = [f"{k} ({n}{plus} file{'s' if n != 1 or plus else ''})" if k.endswith("/") else k
                 for k, n in sorted(tops.items())]
        more = f" and {len(parts) - shown} more" if len(parts) > shown else " and more" if self.partial else ""
        return ", ".join(parts[:shown]) + more


def _read_json(path: Path) -> dict[str, Any]:
    """A record's JSON object, or {} when it cannot be read (the file still counts as the tool's)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _manifest_ids(path: Path) -> list[str]:
    """The ``id`` column of a manifest (build or import), [] when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            if "id" not in header:
                return []
            col = header.index("id")
            return [row[col] for row in reader if len(row) > col and id_problem(row[col]) is None]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _split_lists(split: Any) -> set[str]:
    if not isinstance(split, str) or id_problem(split) or "/" in split:
        return set()
    return {f"{split}/{name}" for name in LIST_NAMES.values()}


def _pairs(ids: Iterable[str]) -> set[str]:
    return {name(i) for i in ids for name in (image_name, mask_name)}


def named_files(root: Path) -> tuple[list[str], set[str], bool]:
    """The records of the tool at ``root``, the relative paths they name, and whether an
    interrupted build's state is there (its ``images/`` and ``masks/`` are then the tool's)."""
    records: list[str] = []
    named: set[str] = set()
    if (root / INFO_NAME).is_file():
        from sirst_synth.store.record import recorded_split

        records.append(INFO_NAME)
        named |= {INFO_NAME} | _split_lists(recorded_split(_read_json(root / INFO_NAME)))
    if (root / MANIFEST_NAME).is_file():
        records.append(MANIFEST_NAME)
        named |= {MANIFEST_NAME} | _pairs(_manifest_ids(root / MANIFEST_NAME))
    interrupted = state_dir(root).is_dir()
    if interrupted:
        records.append(state_dir(root).name)
        named |= _split_lists(interrupted_split(root))
    if (root / IMPORT_RECORD_NAME).is_file():
        records.append(IMPORT_RECORD_NAME)
        splits = _read_json(root / IMPORT_RECORD_NAME).get("splits")
        named.add(IMPORT_RECORD_NAME)
        for split in splits if isinstance(splits, dict) else ():
            named |= _split_lists(split)
    if (root / IMPORT_MANIFEST_NAME).is_file():
        records.append(IMPORT_MANIFEST_NAME)
        named |= {IMPORT_MANIFEST_NAME} | _pairs(_manifest_ids(root / IMPORT_MANIFEST_NAME))
    if (root / EXPORT_RECORD_NAME).is_file():
        records.append(EXPORT_RECORD_NAME)
        written = _read_json(root / EXPORT_RECORD_NAME).get("written")
        named.add(EXPORT_RECORD_NAME)
        named |= {rel for rel in (written if isinstance(written, list) else ())
                  if isinstance(rel, str) and id_problem(rel) is None}
    return records, named, interrupted


def survey(root: Path) -> Survey:
    """Sort every file under ``root`` (which need not exist) into the tool's and foreign ones."""
    found = Survey(root)
    if not root.is_dir():
        return found
    found.records, named, interrupted = named_files(root)
    for folder, dirs, files in os.walk(root):
        if not found.records and len(found.foreign) >= SHALLOW:  # no record: all foreign, refused; enough seen
            found.partial = True
            break
        rel_dir = Path(folder).relative_to(root)
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        dirs[:] = sorted(d for d in dirs if d not in links)
        for name in sorted([*files, *links]):
            rel = (rel_dir / name).as_posix()
            top = rel.split("/", 1)[0]
            if rel == LOCK_NAME:
                continue
            ours = (rel in named or is_temp_name(name) or top.startswith(STATE_PREFIX)
                    or (interrupted and top in PIXEL_FOLDERS and "/" in rel))
            (found.owned if ours else found.foreign).append(rel)
    return found


def refuse_foreign(survey_: Survey, hint: str) -> None:
    """Refuse a folder holding foreign files and no record of the tool (even with ``--force``)."""
    if survey_.foreign and not survey_.records:
        raise OutputError(f"{survey_.root}: holds {survey_.describe_foreign()}, not written by sirst-synth; {hint}")


def remove_owned(survey_: Survey) -> None:
    """Delete the tool's files (the completion marks first, so a cut-short removal never leaves a
    folder that looks complete), then every folder this left empty, bottom up; never ``root``."""
    root = survey_.root
    marks = [rel for rel in survey_.owned if rel in COMPLETION_MARKS]
    parents: set[Path] = set()
    for rel in [*marks, *(rel for rel in survey_.owned if rel not in COMPLETION_MARKS)]:
        path = root / rel
        path.unlink(missing_ok=True)
        parents.update(p for p in path.parents if root in p.parents)
    for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # holds something else: it stays
            folder.rmdir()


def files_under(root: Path) -> list[str]:
    """Relative POSIX paths of every file under ``root`` (a symbolic link counts as a file and is not
    followed), sorted. One ``scandir`` per folder, no path object per file: an export lists 12,452."""
    found: list[str] = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink() or entry.is_file():
                    found.append(prefix + entry.name)
                elif entry.is_dir():
                    walk(entry.path, f"{prefix}{entry.name}/")

    if root.is_dir():
        walk(os.fspath(root), "")
    return sorted(found)


def replace_folder(tmp: Path, out: Path, what: str) -> None:
    """Put the complete folder ``tmp`` in place of ``out``: a rename when ``out`` is absent; else
    the tool's files in ``out`` are removed and ``tmp``'s moved in, its completion marks last. Foreign
    files stay; one where ``tmp`` has a file refuses the whole replacement before anything changes."""
    if not out.exists():
        os.replace(tmp, out)
        return
    found = survey(out)
    foreign = set(found.foreign)
    new = files_under(tmp)
    clash = [rel for rel in new if rel in foreign or any(p.as_posix() in foreign for p in Path(rel).parents)]
    if clash:
        few = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
        raise OutputError(f"{out}: holds {len(clash)} file(s) not written by sirst-synth where this {what} "
                          f"writes ({few}); move them or choose another -o")
    remove_owned(found)
    if not any(out.iterdir()):
        out.rmdir()
        os.replace(tmp, out)
        return
    for rel in sorted(new, key=lambda r: (r in COMPLETION_MARKS, r)):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, out / rel)
    shutil.rmtree(tmp)


def is_tool_file(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file sirst-synth wrote: a noise bank (``tool_version``) or a
    ``build --format h5`` dataset (``info``)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "tool_version" in f.attrs or "info" in f.attrs
    except (OSError, ValueError):
        return False
