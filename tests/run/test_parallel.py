"""sirst_synth.run.parallel: results in submission order, and clear errors for unusable backends."""
from __future__ import annotations

import socket
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from sirst_synth.errors import BackendError
from sirst_synth.progress import silent
from sirst_synth.run.parallel import run_jobs, workers


def slow_for_small(n, offset):
    """n * 10 + offset; small n take longer, so with two workers later jobs tend to finish first."""
    busy = sum(range((10 - n) * 20000))
    assert busy >= 0
    return n * 10 + offset


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_results_come_in_submission_order(n_jobs):
    got = list(run_jobs(slow_for_small, list(range(10)), n_jobs, "test", silent, 1))
    assert got == [n * 10 + 1 for n in range(10)]


def test_no_jobs_give_no_results():
    assert list(run_jobs(slow_for_small, [], 1, "test", silent, 0)) == []


def test_the_progress_hears_of_every_result_and_does_not_change_them():
    seen: list[tuple[str, int]] = []

    @contextmanager
    def progress(label, length):
        seen.append((label, length))
        yield SimpleNamespace(update=lambda n: seen.append(("update", n)))

    assert list(run_jobs(slow_for_small, [3, 1, 2], 1, "test", progress, 0)) == [30, 10, 20]
    assert seen == [("test", 3), ("update", 1), ("update", 1), ("update", 1)]


def test_the_local_backend_runs_jobs_in_the_block():
    with workers("local"):
        assert list(run_jobs(slow_for_small, [1, 2], 1, "test", silent, 0)) == [10, 20]


def test_an_unknown_backend_is_a_backend_error():
    with pytest.raises(BackendError, match="unknown backend 'spark'"), workers("spark"):
        pass


def test_a_scheduler_without_the_dask_backend_is_a_backend_error():
    with pytest.raises(BackendError, match="--scheduler needs --backend dask"), workers("local", "tcp://127.0.0.1:8786"):
        pass


def test_the_dask_backend_without_a_scheduler_is_a_backend_error():
    with pytest.raises(BackendError, match="needs --scheduler"), workers("dask"):
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dask_scheduler_that_cannot_be_reached_is_a_backend_error():
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendError, match=f"cannot reach the dask scheduler at {address}"), workers("dask", address, timeout=1.0):
        pass
