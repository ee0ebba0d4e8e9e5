"""Every name of the dataset layout, defined once (docs/method.md sections 1, 6 and 7).

    ROOT/images/<id>.png            image
    ROOT/masks/<id>.png             mask
    ROOT/<split>/train.txt, test.txt   split lists
    ROOT/manifest.csv               provenance, one row per image (built datasets)
    ROOT/sirst-synth.json           the build record, written last (the completion mark)
    ROOT/.sirst-synth-partial/      the state of an unfinished build
    ROOT/.sirst-synth-scratch/      what a build writes while it checks its source (its noise
                                    bank), before it starts the output; removed when it ends
    ROOT/.sirst-synth-lock          held while a command writes ROOT (pid and command inside)
    ROOT/.sirst-synth-runs.jsonl    the run log: one line per run (mode, seconds), not in the record
    ROOT/.sirst-synth-units/        in the staging folder of build --format h5 only: each unit's
                                    images as stored in the HDF5 file, one file a unit
    .<name>.<pid>.tmp               a file being written, renamed into place when complete

    ROOT/import.json, import-manifest.csv   the record of ``import`` (what it wrote, from where)
    ROOT/sirst-synth-export.json            the record of ``export`` and ``build --layout``
                                            (every file it wrote, in ``written``)

Plain constants, path arithmetic and the id rule, no third-party import: ``verify`` and the CLI import it cheaply.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from sirst_synth.errors import IdError

IMAGES = "images"
MASKS = "masks"
#: the two folders of pixels, in the order images, masks
PIXEL_FOLDERS = (IMAGES, MASKS)
SUFFIX = ".png"
#: the parts of a split, each listed in its own file
PARTS = ("train", "test")
#: the split folder of NUDT-SIRST and of every build
DEFAULT_SPLIT = "50_50"
LIST_NAMES = {"train": "train.txt", "test": "test.txt"}
MANIFEST_NAME = "manifest.csv"
INFO_NAME = "sirst-synth.json"
#: the kinds of training image a build writes (manifest column ``kind``)
KINDS = ("original", "displaced", "negative")
#: prefix of the hidden entries an unfinished build leaves
STATE_PREFIX = ".sirst-synth"
STATE_NAME = STATE_PREFIX + "-partial"
#: the folder a command writes in while it checks its source, before the output is started (or
#: cleared by --force): its files move into the state folder once it starts (see scratch_dir)
SCRATCH_NAME = STATE_PREFIX + "-scratch"
#: the lock a writing command holds inside its output folder (beside a file output: see lock_path)
LOCK_NAME = STATE_PREFIX + "-lock"
#: the run log: what differs between identical runs (seconds, resumed), kept out of INFO_NAME
RUN_LOG_NAME = STATE_PREFIX + "-runs.jsonl"
#: the records of ``import`` (its manifest and its JSON record) and of ``export``
IMPORT_MANIFEST_NAME = "import-manifest.csv"
IMPORT_RECORD_NAME = "import.json"
EXPORT_RECORD_NAME = "sirst-synth-export.json"
#: the folders DNANet's scripts write their results into, inside the dataset folder (``export --to
#: dnanet`` makes them: DNANet never does)
DNANET_RESULT_FOLDERS = ("value_result", "visulization_result")
#: in the staging folder of ``build --format h5`` only: each unit's images as stored chunks, one file a unit
UNITS_DIR = STATE_PREFIX + "-units"

_TEMP_RE = re.compile(r"^\..+\.\d+\.tmp$")
_DRIVE = re.compile(r"^[A-Za-z]:")
#: joins the folder parts of an id in its flat name (:func:`flat_name`)
SEPARATOR = "__"


def image_name(id_: str) -> str:
    """Path of ``id_``'s image relative to the dataset root (POSIX)."""
    return f"{IMAGES}/{id_}{SUFFIX}"


def mask_name(id_: str) -> str:
    """Path of ``id_``'s mask relative to the dataset root (POSIX)."""
    return f"{MASKS}/{id_}{SUFFIX}"


def state_dir(out: Path) -> Path:
    """The hidden folder holding an unfinished build's state."""
    return out / STATE_NAME


def scratch_dir(out: Path) -> Path:
    """The hidden folder a build writes in while it checks its source (before the output is
    started): inside the output, so a kill leaves nothing elsewhere, and apart from the state
    folder, so a finished dataset stays recognisably complete meanwhile."""
    return out / SCRATCH_NAME


def lock_path(out: Path, inside: bool) -> Path:
    """The lock of the output ``out``: ``OUT/.sirst-synth-lock`` inside a folder output, else
    ``.<name>.sirst-synth-lock`` beside it (a file, or a folder replaced whole by a rename)."""
    return out / LOCK_NAME if inside else out.parent / f".{out.name}{LOCK_NAME}"


def temp_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: ``.<name>.<pid>.tmp`` beside it."""
    return path.with_name(temp_name(path.name))


def temp_name(name: str) -> str:
    """The file name of :func:`temp_path` for a file named ``name``."""
    return f".{name}.{os.getpid()}.tmp"


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`temp_path`'s."""
    return bool(_TEMP_RE.match(name))


def temp_files(folder: Path, name: str = "*") -> list[Path]:
    """The temporary files of ``name`` (a glob) in ``folder``."""
    return [p for p in folder.glob(f".{name}.*.tmp") if is_temp_name(p.name)]


def id_problem(id_: str) -> str | None:
    """Why ``id_`` would leave the dataset or cannot name a file, or None when it is safe: the one
    rule for ids, in every command.

    Accepted: one or more non-empty parts joined by ``/`` (IRDST, NUDT-SIRST-Sea: ``44/1(814)``
    names ``images/44/1(814).png``), none of them ``.`` or ``..``. Refused: an absolute path, a
    drive letter, a backslash, a NUL or other control character.
    """
    if not id_:
        return "empty id"
    if any(ord(c) < 32 or c == "\x7f" for c in id_):
        return "contains a control character (NUL, tab, ...)"
    if "\\" in id_:
        return "contains a backslash; folder parts are separated by /"
    if id_.startswith("/") or _DRIVE.match(id_):
        return "is an absolute path; ids name files inside the dataset"
    if any(p in ("", ".", "..") for p in id_.split("/")):
        return "has an empty, '.' or '..' folder part (ids must stay inside the dataset)"
    return None


def flat_name(id_: str) -> str:
    """The flat id (and file name, less ``.png``) of a safe id: its folder parts joined by ``__``.
    Outputs (builds, imports) keep their images flat under this id; the manifest's ``source_id``
    keeps the original."""
    return SEPARATOR.join(id_.split("/"))


def flat_names(ids: Iterable[str]) -> dict[str, str]:
    """id -> flat name for every id; raise :class:`IdError` when two ids get the same name."""
    seen: dict[str, str] = {}
    out = {}
    for id_ in ids:
        flat = flat_name(id_)
        if flat in seen and seen[flat] != id_:
            raise IdError(f"ids {seen[flat]!r} and {id_!r} both map to the file name {flat!r}.png; rename one of them")
        seen[flat] = id_
        out[id_] = flat
    return out
