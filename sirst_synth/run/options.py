"""What a stage is asked (:class:`RunOptions`: how to run) and what a dataset stage answers
(:class:`StageResult`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sirst_synth.progress import Progress, silent
from sirst_synth.run.state import RunMode


@dataclass(frozen=True)
class RunOptions:
    """How to run, not what to compute: outputs never depend on these."""

    n_jobs: int = -1
    progress: Progress = silent
    skip_invalid: bool = False
    force: bool = False
    resume: bool = False


@dataclass(frozen=True)
class StageResult:
    """What a dataset stage did: the output (as named), its images per split and per kind of the
    train split, the ids ``--skip-invalid`` left out, the seconds it took and how it started."""

    out: Path
    train: int
    test: int
    original: int
    displaced: int
    negative: int
    skipped: int
    seconds: float
    mode: RunMode

    @classmethod
    def of(cls, out: Path, counts: dict[str, int], skipped: int, seconds: float, mode: RunMode) -> StageResult:
        return cls(out, counts.get("train", 0), counts.get("test", 0), counts.get("original", 0),
                   counts.get("displaced", 0), counts.get("negative", 0), skipped, round(seconds, 3), mode)
