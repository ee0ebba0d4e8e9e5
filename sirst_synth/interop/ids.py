"""Ids with folder parts (IRDST, NUDT-SIRST-Sea: ``44/1(814)``) and the flat file names they get.

An id may name a file below ``images/`` in a release, but a dataset in the DNANet layout keeps
its images flat, one ``images/<id>.png`` per id. :func:`flat_name` joins the folder parts with
``__``; the import records both in its manifest.
"""
from __future__ import annotations

import re

from sirst_synth.errors import IdError

#: joins the folder parts of an id in its flat file name.
SEPARATOR = "__"
_DRIVE = re.compile(r"^[A-Za-z]:")


def id_problem(id_: str) -> str | None:
    """Why ``id_`` would leave the dataset or cannot name a file, or None when it is safe.

    Accepted: one or more non-empty parts joined by ``/``, none of them ``.`` or ``..``.
    Refused: an absolute path, a drive letter, a backslash, a NUL or other control character.
    """
    if not id_:
        return "empty id"
    if any(ord(c) < 32 or c == "\x7f" for c in id_):
        return "contains a control character (NUL, tab, ...)"
    if "\\" in id_:
        return "contains a backslash; folder parts are separated by /"
    if id_.startswith("/") or _DRIVE.match(id_):
        return "is an absolute path; ids name files inside the dataset"
    parts = id_.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' folder part (ids must stay inside the dataset)"
    return None


def check_id(id_: str, where: str) -> str:
    """Return ``id_`` when safe, else raise :class:`IdError` naming ``where`` it was listed."""
    bad = id_problem(id_)
    if bad:
        raise IdError(f"{where}: id {id_!r} {bad}")
    return id_


def flat_name(id_: str) -> str:
    """The flat file name (without extension) of a safe id: folder parts joined by ``__``."""
    return SEPARATOR.join(id_.split("/"))


def flat_names(ids: list[str]) -> dict[str, str]:
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
