"""Running job records in joblib workers, results in submission order, reported to a progress bar.

The workers are local processes, or, inside :func:`workers` with ``backend="dask"``, the workers
of a ``dask.distributed`` cluster: the same job records, the same results in the same order.
"""
from __future__ import annotations

import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from joblib import Parallel, delayed

from sirst_synth.errors import BackendError
from sirst_synth.progress import Progress


def run_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[Any],
    n_jobs: int,
    label: str,
    progress: Progress,
    *args: Any,
) -> Iterator[Any]:
    """Yield ``fn(job, *args)`` for each job, in the order of ``jobs``, whatever finishes first.

    ``progress`` is told of each result (:mod:`sirst_synth.progress`).
    """
    if not jobs:
        return
    parallel = Parallel(n_jobs=n_jobs, return_as="generator")
    results = None
    try:
        with _sigint_held(n_jobs):  # the workers start with Ctrl-C blocked: only this process answers it
            results = parallel(delayed(fn)(job, *args) for job in jobs)
        # a plain loop, not ``yield from``: closing this generator early must not close ``results`` unguarded
        with progress(label, len(jobs)) as bar:
            for result in results:
                bar.update(1)
                yield result
    finally:
        if results is not None:
            with warnings.catch_warnings():  # stopped early (an error, Ctrl-C): joblib's "tasks ... not used"
                warnings.filterwarnings("ignore", category=UserWarning, module=JOBLIB_WARNINGS)
                results.close()


#: the modules whose warnings (joblib's about results left unused when a run stops) never reach a user
JOBLIB_WARNINGS = r"joblib(\.|$)"


@contextmanager
def _sigint_held(n_jobs: int) -> Iterator[None]:
    """Hold Ctrl-C while joblib starts its workers. A Ctrl-C reaches the whole process group: a
    worker importing its modules would print a traceback, and this process, stopped while it hands
    a worker its task, would leave it printing another. So SIGINT is blocked in this thread (the
    workers inherit the mask and never see it; this process stops them) and a Ctrl-C that lands on
    another thread (a BLAS pool's) is only noted; either is raised here once the workers run."""
    if (n_jobs == 1 or not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None)):  # workers inherit an ignored SIGINT
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # started first: Python 3.11 unblocks SIGINT after starting it
    pressed: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one pressed meanwhile arrives now
    if pressed:
        raise KeyboardInterrupt


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
