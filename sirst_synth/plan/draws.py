"""Noise draws: which bank patch each (image, round) gets (docs/method.md section 3).

Draws are keyed by ``(seed, "displace", round, image id)``: from another source whenever the bank
has one, never a patch the image already had in an earlier round.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sirst_synth.errors import PlanError
from sirst_synth.plan.seeding import rng_for


class PatchSources:
    """Which bank patches an image may draw: the rule of docs/method.md section 3, defined once for
    the build (:class:`NoiseDrawer`) and the online transforms (:mod:`sirst_synth.transforms`)."""

    def __init__(self, bank_source_ids: Sequence[str]):
        sources, codes = np.unique(np.asarray(bank_source_ids, dtype=object).astype(str), return_inverse=True)
        self.code = {s: i for i, s in enumerate(sources.tolist())}
        #: (patches,) the source number of each patch (sources in sorted order)
        self.codes = codes.astype(np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.codes)

    def candidates(self, source_id: str, history: Sequence[int] = ()) -> np.ndarray:
        """Bank indices, ascending, that an image of ``source_id`` may draw: every patch cut from
        another source (every patch when the bank holds that source's only), less ``history``
        (the patches the image already had)."""
        code = self.code.get(source_id)
        candidates = np.flatnonzero(self.codes != code) if code is not None else np.arange(len(self.codes))
        if candidates.size == 0:  # the bank holds patches of this image only
            candidates = np.arange(len(self.codes))
        if len(history):
            candidates = np.setdiff1d(candidates, history, assume_unique=True)
        return candidates


def pick(candidates: np.ndarray, rng: np.random.Generator) -> int:
    """One of ``candidates``, uniformly, with one ``rng.integers`` draw (the build's draw)."""
    return int(candidates[rng.integers(candidates.size)])


class NoiseDrawer:
    """Draws bank patches for (image, round): from another source whenever the bank has one,
    never a patch the image already had in an earlier round."""

    def __init__(self, bank_source_ids: Sequence[str], seed: int):
        self.seed = seed
        self.sources = PatchSources(bank_source_ids)
        self._history: dict[str, list[int]] = {}

    def check_capacity(self, ids: Sequence[str], rounds: int) -> None:
        """Raise PlanError unless every image can get ``rounds`` different patches."""
        codes, code = self.sources.codes, self.sources.code
        total = len(codes)
        counts = np.bincount(codes, minlength=len(code))
        for id_ in ids:
            own = int(counts[code[id_]]) if id_ in code else 0
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
        candidates = self.sources.candidates(source_id, history)
        if candidates.size == 0:
            raise PlanError(
                f"the noise bank has too few patches for {round_ + 1} rounds of image {image_id!r}; "
                "sample more noise (raise --max-var or --grid) or ask for fewer images"
            )
        return pick(candidates, rng_for(self.seed, "displace", round_, image_id))
