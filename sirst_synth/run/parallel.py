"""Running job records in joblib workers, results in submission order, with a progress bar.

The workers are local processes, or, inside :func:`workers` with ``backend="dask"``, the workers
of a ``dask.distributed`` cluster: the same job records, the same results in the same order.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from joblib import Parallel, delayed

from sirst_synth.errors import BackendError


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


BACKENDS = ("local", "dask")




@contextmanager
def workers(backend: str = "local", scheduler: str | None = None, timeout: float = 10.0) -> Iterator[None]:
    """Run every :func:`run_jobs` inside the block on ``backend``.

    ``local``: joblib's process pool on this machine. ``dask``: the workers of the
    ``dask.distributed`` scheduler at ``scheduler`` (through joblib's dask backend), which must
    reach the source and output folders by the same paths (a shared filesystem).
    """
    if backend == "local":
        if scheduler:
            raise BackendError("--scheduler needs --backend dask")
        yield
        return
    if backend != "dask":
        raise BackendError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if not scheduler:
        raise BackendError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    try:
        from distributed import Client
    except ImportError:
        raise BackendError("--backend dask needs dask.distributed: pip install 'sirst-synth[dask]'") from None
    from joblib import parallel_config

    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise BackendError(f"cannot reach the dask scheduler at {scheduler} ({exc})") from None
    with client, parallel_config(backend="dask"):
        yield
