"""The plan: every random choice resolved up front, before any worker runs (SPEC sections 3, 5, 7).

Noise draws are keyed by ``(seed, "displace", round, image id)``; the visiting order of round r
by ``(seed, "order", r)``. Units (a displaced image and its negatives) are taken in plan order,
in batches that never reach past the unit where the requested total is met.
"""
from __future__ import annotations

from sirst_synth.errors import SirstSynthError

import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from sirst_synth.seeding import rng_for


class PlanError(SirstSynthError):
    """The requested plan cannot be made (e.g. too few noise patches for the rounds asked)."""


class NoiseDrawer:
    """Draws bank patches for (image, round): from another source whenever the bank has one,
    never a patch the image already had in an earlier round."""

    def __init__(self, bank_source_ids: Sequence[str], seed: int):
        self.seed = seed
        sources, codes = np.unique(np.asarray(bank_source_ids, dtype=object).astype(str), return_inverse=True)
        self._code = {s: i for i, s in enumerate(sources.tolist())}
        self._codes = codes
        self._history: dict[str, list[int]] = {}

    def check_capacity(self, ids: Sequence[str], rounds: int) -> None:
        """Raise PlanError unless every image can get ``rounds`` different patches."""
        total = len(self._codes)
        counts = np.bincount(self._codes, minlength=len(self._code))
        for id_ in ids:
            own = int(counts[self._code[id_]]) if id_ in self._code else 0
            usable = total - own if total > own else total
            if usable < rounds:
                raise PlanError(
                    f"the noise bank has {usable} usable patches for image {id_!r} but {rounds} rounds need "
                    f"as many different ones; sample more noise (raise --max-var or --grid) or ask for fewer images"
                )

    def draw(self, image_id: str, round_: int, source_id: str | None = None) -> int:
        """The bank index for ``image_id`` in ``round_``; rounds are drawn in order per image.

        Patches cut from ``source_id`` (default: the image itself) are avoided when others exist.
        """
        history = self._history.setdefault(image_id, [])
        while len(history) <= round_:
            history.append(self._draw_next(image_id, source_id or image_id, len(history), history))
        return history[round_]

    def _draw_next(self, image_id: str, source_id: str, round_: int, history: list[int]) -> int:
        code = self._code.get(source_id)
        candidates = np.flatnonzero(self._codes != code) if code is not None else np.arange(len(self._codes))
        if candidates.size == 0:  # the bank holds patches of this image only
            candidates = np.arange(len(self._codes))
        if history:
            candidates = np.setdiff1d(candidates, history, assume_unique=True)
        if candidates.size == 0:
            raise PlanError(
                f"the noise bank has too few patches for {round_ + 1} rounds of image {image_id!r}; "
                "sample more noise (raise --max-var or --grid) or ask for fewer images"
            )
        rng = rng_for(self.seed, "displace", round_, image_id)
        return int(candidates[rng.integers(candidates.size)])


def round_order(ids: Sequence[str], seed: int, round_: int) -> list[str]:
    """The seeded order in which round ``round_`` visits ``ids``."""
    perm = rng_for(seed, "order", round_).permutation(len(ids))
    return [ids[i] for i in perm]


def plan_units(ids: Sequence[str], seed: int) -> Iterator[tuple[int, str]]:
    """(round, image id) in plan order: round 0 in its seeded order, then round 1, ... forever."""
    if not ids:
        return
    round_ = 0
    while True:
        for id_ in round_order(ids, seed, round_):
            yield round_, id_
        round_ += 1


#: most units in one batch: bounds the parent's memory (job records, results in flight) whatever
#: ``--total`` is, while keeping every worker busy (a batch ends with at most one unit per worker).
MAX_BATCH_UNITS = 1024


def next_batch(
    units: Iterator[tuple[int, str]], max_sizes: dict[str, int], needed: int, limit: int = MAX_BATCH_UNITS
) -> list[tuple[int, str]]:
    """The shortest prefix of ``units`` whose largest possible output reaches ``needed`` images,
    or its first ``limit`` units when that prefix is longer.

    Every unit of such a batch is needed (a unit yields at most ``max_sizes[id]`` images), so a
    build computes no unit it then throws away; only the last unit may be cut.
    """
    batch, reach = [], 0
    while reach < needed and len(batch) < limit:
        unit = next(units, None)
        if unit is None:
            break
        batch.append(unit)
        reach += max_sizes[unit[1]]
    return batch


def displaced_id(source_id: str, round_: int) -> str:
    """Id of the image displaced from ``source_id`` in ``round_``."""
    return f"{source_id}_r{round_}"


def negative_id(parent_id: str, target: int, k: int) -> str:
    """Id of the negative of ``parent_id`` for target label ``target`` rotated k * 90 degrees."""
    return f"{parent_id}_t{target}_k{k}"


def negative_ids(parent_id: str, targets: int) -> list[str]:
    """Every id a negative of ``parent_id`` with ``targets`` targets may get."""
    return [negative_id(parent_id, t, k) for t in range(1, targets + 1) for k in (1, 2, 3)]


_BUILD_ID = re.compile(r"(.+)_r(0|[1-9]\d*)(?:_t([1-9]\d*)_k([123]))?")


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
