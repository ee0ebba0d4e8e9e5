"""torch's CPU threads: the idle cores by default, so a busy machine is not oversubscribed."""
from __future__ import annotations

import pytest

from sirst_synth.train import threads


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return monkeypatch


@pytest.mark.parametrize(("load", "expected"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1), (3.3, 1)])
def test_the_default_takes_the_cores_the_load_leaves_idle(two_cores: pytest.MonkeyPatch, load: float,
                                                          expected: int) -> None:
    two_cores.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    count, why = threads.choose_threads()
    assert count == expected and f"{expected} of 2 cores idle" in why and f"load {load:.1f}" in why


def test_an_explicit_count_wins(two_cores: pytest.MonkeyPatch) -> None:
    two_cores.setattr(threads.os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    assert threads.choose_threads(2) == (2, "--threads 2")
    two_cores.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads() == (3, "OMP_NUM_THREADS=3")


def test_apply_sets_torch_and_says_what_it_chose(two_cores: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert threads.apply_threads(1) == "1 CPU thread (--threads 1)"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
