"""What each stage computes, as parameter objects, and every option range, declared once.

The CLI builds its option checks from :data:`RANGES`; the stages call ``validate()``; the build
record (``sirst-synth.json``, the resume check) stores ``record()``. Outputs depend on these
parameters only, never on how a run is executed (:class:`sirst_synth.run.options.RunOptions`).
The CLI imports this module to build its options, so ``validate()`` imports the channels check
(:func:`sirst_synth.store.imageio.check_channels`, with OpenCV) when it runs, not at import.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sirst_synth.errors import ParamError
from sirst_synth.method.choices import FITS
from sirst_synth.store.layout import KINDS


@dataclass(frozen=True)
class Range:
    """The values an option accepts: ``low <= value <= high`` (``<`` on an end marked open), odd
    when ``odd``."""

    option: str
    low: float | None = None
    high: float | None = None
    odd: bool = False
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            want = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            want = f"{'>' if self.low_open else '>='} {self.low:g}"
        else:
            want = f"{'<' if self.high_open else '<='} {self.high:g}" if self.high is not None else ""
        if self.odd:
            want = f"odd and {want}" if want else "odd"
        return want

    def check(self, value: float) -> None:
        """Raise :class:`ParamError` naming the option when ``value`` is out of range."""
        bad = (math.isnan(value) or (self.low is not None and (value <= self.low if self.low_open else value < self.low))
               or (self.high is not None and (value >= self.high if self.high_open else value > self.high))
               or (self.odd and value % 2 == 0))
        if bad:
            raise ParamError(f"{self.option} must be {self.describe()}, got {value:g}")


#: every range of a method parameter, by parameter name (each range names its option in its messages)
RANGES = {
    "alpha": Range("--alpha", 0.0, 1.0),
    "s": Range("--s", 1, odd=True),
    "grid": Range("--grid", 1),
    "max_var": Range("--max-var", 0),
    "max_mean": Range("--max-mean", 0),
    "rounds": Range("--rounds", 1),
    "total": Range("--total", 1),
    "seed": Range("--seed", 0),
}


def check_fit(fit: str) -> None:
    if fit not in FITS:
        raise ParamError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")


@dataclass(frozen=True)
class NoiseParams:
    """Thresholds of noise sampling (docs/method.md section 2)."""

    grid: int = 8
    max_var: float = 50.0
    max_mean: float = 255.0

    def validate(self) -> None:
        RANGES["grid"].check(self.grid)
        RANGES["max_var"].check(self.max_var)
        RANGES["max_mean"].check(self.max_mean)

    def record(self) -> dict[str, Any]:
        return {"grid": self.grid, "max_var": self.max_var, "max_mean": self.max_mean}


@dataclass(frozen=True)
class DisplaceParams:
    """Noise2Noise displacement (docs/method.md section 3): ``rounds`` displaced versions per image."""

    alpha: float
    rounds: int = 1
    fit: str = "resize"
    seed: int = 0
    channels: int = 1

    def validate(self) -> None:
        from sirst_synth.store.imageio import check_channels

        check_channels(self.channels)
        RANGES["alpha"].check(self.alpha)
        RANGES["rounds"].check(self.rounds)
        RANGES["seed"].check(self.seed)
        check_fit(self.fit)

    def record(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "rounds": self.rounds, "fit": self.fit, "seed": self.seed, "channels": self.channels}


@dataclass(frozen=True)
class NegaugParams:
    """Negative augmentation (docs/method.md section 4) of the train images of ``kinds``."""

    s: int = 3
    kinds: tuple[str, ...] = ("original", "displaced")
    channels: int = 1

    def validate(self) -> None:
        from sirst_synth.store.imageio import check_channels

        check_channels(self.channels)
        RANGES["s"].check(self.s)
        for kind in self.kinds:
            if kind not in KINDS[:2]:
                raise ParamError(f"--only must be original or displaced, got {kind!r}")

    def record(self) -> dict[str, Any]:
        return {"s": self.s, "kinds": sorted(set(self.kinds)), "channels": self.channels}


@dataclass(frozen=True)
class BuildParams:
    """The whole SIRST-5K build (docs/method.md section 5)."""

    alpha: float = 0.1
    s: int = 3
    total: int = 5562
    seed: int = 0
    fit: str = "resize"
    noise: NoiseParams = NoiseParams()
    channels: int = 1

    def validate(self) -> None:
        from sirst_synth.store.imageio import check_channels

        check_channels(self.channels)
        RANGES["alpha"].check(self.alpha)
        RANGES["s"].check(self.s)
        RANGES["total"].check(self.total)
        RANGES["seed"].check(self.seed)
        check_fit(self.fit)
        self.noise.validate()

    def record(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "s": self.s, "total": self.total, "seed": self.seed, **self.noise.record(),
                "fit": self.fit, "channels": self.channels}
