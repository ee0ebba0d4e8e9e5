"""torch's CPU thread count for training and scoring, chosen for the machine's load.

torch starts one intra-op thread per core and its OpenMP threads spin while they wait for each
other. On a small or shared CPU whose cores are busy with other work, those threads wait on each
other for most of a step (the smoke run's 20 steps: 59.6 s with the default on a loaded 2-core
machine, 1.5 s with one thread). So unless told otherwise (``--threads``, or ``OMP_NUM_THREADS``
in the environment), the trainer takes the cores it may run on less the ones the load average
says are busy, at least one.
"""
from __future__ import annotations

import math
import os


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cores(cores: int | None = None) -> int:
    """Cores left idle by the 1-minute load average (rounded), at least 1."""
    cores = cores or usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, cores - math.floor(load + 0.5)))


def choose_threads(requested: int | None = None) -> tuple[int, str]:
    """The intra-op thread count, and why: ``requested``, else ``OMP_NUM_THREADS``, else the idle cores."""
    cores = usable_cores()
    if requested is not None:
        return requested, f"--threads {requested}"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), f"OMP_NUM_THREADS={env}"
    threads = idle_cores(cores)
    return threads, f"{threads} of {cores} cores idle (1-minute load {os.getloadavg()[0]:.1f})"


def apply_threads(requested: int | None = None) -> str:
    """Set torch's intra-op threads as :func:`choose_threads` says; return the phrase for the log."""
    import torch

    threads, why = choose_threads(requested)
    torch.set_num_threads(threads)
    return f"{threads} CPU thread{'s' if threads > 1 else ''} ({why})"
