"""Output ids of generated images, and the checks that they never overwrite a source id
(docs/method.md section 5): ``<src>_r<round>`` (displaced), ``<src>_r<round>_t<target>_k<k>`` (negatives).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from sirst_synth.errors import PlanError
from sirst_synth.method.choices import ROTATIONS


def displaced_id(source_id: str, round_: int) -> str:
    """Id of the image displaced from ``source_id`` in ``round_``."""
    return f"{source_id}_r{round_}"


def negative_id(parent_id: str, target: int, k: int) -> str:
    """Id of the negative of ``parent_id`` for target label ``target`` rotated k * 90 degrees."""
    return f"{parent_id}_t{target}_k{k}"


def negative_ids(parent_id: str, targets: int) -> list[str]:
    """Every id a negative of ``parent_id`` with ``targets`` targets may get."""
    return [negative_id(parent_id, t, k) for t in range(1, targets + 1) for k in ROTATIONS]


_BUILD_ID = re.compile(r"(.+)_r(0|[1-9]\d*)(?:_t([1-9]\d*)_k(" + "|".join(str(k) for k in ROTATIONS) + "))?")


def build_id_clashes(existing: Iterable[str], targets: dict[str, int], rounds: int) -> list[str]:
    """The ``existing`` ids that a build of ``rounds`` rounds could also write, where ``targets``
    maps each train id to its number of targets. Parses each id instead of listing every id the
    plan may write, so the check costs the same for any ``--total``."""
    clashes = []
    for id_ in existing:
        m = _BUILD_ID.fullmatch(id_)
        if m and m[1] in targets and int(m[2]) < rounds and (m[3] is None or int(m[3]) <= targets[m[1]]):
            clashes.append(id_)
    return clashes


def check_new_ids(existing: set[str], new: Iterable[str]) -> None:
    """Raise PlanError when an id the plan may write is already a source id."""
    refuse_clashes(set(new) & existing)


def refuse_clashes(clashes: Iterable[str]) -> None:
    """Raise PlanError naming the source ids an output would overwrite, if any."""
    clashes = sorted(clashes)
    if clashes:
        shown = ", ".join(repr(c) for c in clashes[:5]) + (" ..." if len(clashes) > 5 else "")
        raise PlanError(
            f"{len(clashes)} output id(s) would overwrite source images of the same id ({shown}); "
            "was this stage already applied to the source?"
        )
