"""Every name of the dataset layout, defined once (docs/method.md sections 1, 6 and 7).

    ROOT/images/<id>.png            image
    ROOT/masks/<id>.png             mask
    ROOT/<split>/train.txt, test.txt   split lists
    ROOT/manifest.csv               provenance, one row per image (built datasets)
    ROOT/sirst-synth.json           the build record, written last (the completion mark)
    ROOT/.sirst-synth-partial/      the state of an unfinished build
    ROOT/.sirst-synth-lock          held while a command writes ROOT (pid and command inside)
    ROOT/.sirst-synth-runs.jsonl    the run log: one line per run (mode, seconds), not in the record
    .<name>.<pid>.tmp               a file being written, renamed into place when complete

Plain constants and path arithmetic, no third-party import: ``verify`` and the CLI import it cheaply.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

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
#: the lock a writing command holds inside its output folder (beside a file output: see lock_path)
LOCK_NAME = STATE_PREFIX + "-lock"
#: the run log: what differs between identical runs (seconds, resumed), kept out of INFO_NAME
RUN_LOG_NAME = STATE_PREFIX + "-runs.jsonl"

_TEMP_RE = re.compile(r"^\..+\.\d+\.tmp$")


def image_name(id_: str) -> str:
    """Path of ``id_``'s image relative to the dataset root (POSIX)."""
    return f"{IMAGES}/{id_}{SUFFIX}"


def mask_name(id_: str) -> str:
    """Path of ``id_``'s mask relative to the dataset root (POSIX)."""
    return f"{MASKS}/{id_}{SUFFIX}"


def state_dir(out: Path) -> Path:
    """The hidden folder holding an unfinished build's state."""
    return out / STATE_NAME


def lock_path(out: Path, inside: bool) -> Path:
    """The lock of the output ``out``: ``OUT/.sirst-synth-lock`` inside a folder output, else
    ``.<name>.sirst-synth-lock`` beside it (a file, or a folder replaced whole by a rename)."""
    return out / LOCK_NAME if inside else out.parent / f".{out.name}{LOCK_NAME}"


def temp_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: ``.<name>.<pid>.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`temp_path`'s."""
    return bool(_TEMP_RE.match(name))


def temp_files(folder: Path, name: str = "*") -> list[Path]:
    """The temporary files of ``name`` (a glob) in ``folder``."""
    return [p for p in folder.glob(f".{name}.*.tmp") if is_temp_name(p.name)]


def id_problem(id_: str) -> str | None:
    """Why ``id_`` cannot name a file inside images/ and masks/, or None when it can."""
    if not id_ or id_ in (".", "..") or any(c in id_ for c in "/\\\0"):
        return "not a plain file name"
    return None
