"""The order of work: which (round, image) unit comes next, and in what batches (docs/method.md section 5).

The visiting order of round r is keyed by ``(seed, "order", r)``. Units (a displaced image and its
negatives) are taken in plan order, in batches that never reach past the unit where the requested
total is met.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from sirst_synth.plan.seeding import rng_for


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
    batch: list[tuple[int, str]] = []
    reach = 0
    while reach < needed and len(batch) < limit:
        unit = next(units, None)
        if unit is None:
            break
        batch.append(unit)
        reach += max_sizes[unit[1]]
    return batch
