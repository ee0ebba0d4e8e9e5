"""Running job records in joblib workers, results in submission order, with a progress bar."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click
from joblib import Parallel, delayed


def run_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[Any],
    n_jobs: int,
    label: str,
    progress: bool,
    *args: Any,
) -> Iterator[Any]:
    """Yield ``fn(job, *args)`` for each job, in the order of ``jobs``, whatever finishes first.

    ``progress`` shows click's progress bar on stderr.
    """
    if not jobs:
        return
    parallel = Parallel(n_jobs=n_jobs, return_as="generator")
    results = parallel(delayed(fn)(job, *args) for job in jobs)
    if not progress:
        yield from results
        return
    with click.progressbar(length=len(jobs), label=label, file=sys.stderr) as bar:
        for result in results:
            bar.update(1)
            yield result
