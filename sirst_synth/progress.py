"""Progress display, owned by the CLI: code that loops over many items reports to the
:data:`Progress` it is handed (``RunOptions.progress``, ``progress=``). The CLI hands click's bars on
stderr (:meth:`sirst_synth.cli.app.Settings.bars`); everything else gets :func:`silent`. Nothing
below the CLI draws anything or imports click."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol


class Bar(Protocol):
    """An open progress bar."""

    def update(self, n_steps: int) -> None:
        """Advance the bar by ``n_steps`` items."""


#: opens a bar of ``length`` items labelled ``label``: ``with progress(label, length) as bar: bar.update(1)``
Progress = Callable[[str, int], AbstractContextManager[Bar]]


class _NoBar:
    def update(self, n_steps: int) -> None:
        pass


def silent(label: str, length: int) -> AbstractContextManager[Bar]:
    """A :data:`Progress` that shows nothing."""
    return nullcontext(_NoBar())
