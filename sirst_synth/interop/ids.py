"""Ids with folder parts (IRDST, NUDT-SIRST-Sea: ``44/1(814)``) and the flat file names they get.

An id may name a file below ``images/`` in a release, but a dataset the tool writes keeps its
images flat, one ``images/<id>.png`` per id. The rule and the flat names are
:mod:`sirst_synth.store.layout`'s (one owner for every command); the import records both in its
manifest.
"""
from __future__ import annotations

from sirst_synth.errors import IdError
from sirst_synth.store.layout import SEPARATOR, flat_name, flat_names, id_problem

__all__ = ["SEPARATOR", "IdError", "check_id", "flat_name", "flat_names", "id_problem"]


def check_id(id_: str, where: str) -> str:
    """Return ``id_`` when safe, else raise :class:`IdError` naming ``where`` it was listed."""
    bad = id_problem(id_)
    if bad:
        raise IdError(f"{where}: id {id_!r} {bad}")
    return id_
