"""`--backend dask`: the same job records on a dask.distributed cluster give the same dataset.

A LocalCluster on 127.0.0.1 with two worker processes stands in for a cluster: its workers reach
the source and the output by path, as cluster nodes do through a shared filesystem.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".sirst-synth-runs.jsonl"}


def test_build_on_a_local_cluster_is_byte_identical_to_the_local_build(demo, tmp_path, scheduler):
    run_cli("build", "--src", demo, "--total", "200", "-o", tmp_path / "local", "-j", "2")
    res = run_cli("build", "--src", demo, "--total", "200", "-o", tmp_path / "dask",
                  "--backend", "dask", "--scheduler", scheduler)
    assert res.output.startswith("build: 200 train")
    local, dask = files(tmp_path / "local"), files(tmp_path / "dask")
    assert len(local) == 2 * (200 + 20) + 4 and dask == local  # sirst-synth.json included
    with distributed.Client(scheduler) as client:
        assert len(client.run(lambda: __import__("os").getpid())) == 2
    run_cli("verify", tmp_path / "dask")


def test_stage_commands_run_on_the_cluster_too(demo, tmp_path, scheduler):
    for backend in (("-j", "1"), ("--backend", "dask", "--scheduler", scheduler)):
        out = tmp_path / backend[-1].replace("/", "_").replace(":", "_")
        run_cli("sample-noise", "--src", demo, "-o", out / "noise.h5", *backend)
        run_cli("displace", "--src", demo, "--noise", out / "noise.h5", "--alpha", "0.2", "-o", out / "d", *backend)
    a, b = sorted(p for p in tmp_path.iterdir())
    fa, fb = files(a / "d"), files(b / "d")
    records = [json.loads(f.pop("sirst-synth.json")) for f in (fa, fb)]
    assert fa == fb
    for record in records:  # the one difference: where each bank lies
        record["noise_bank"].pop("path")
    assert records[0] == records[1]


@pytest.mark.slow  # waits for the connection timeout
def test_unreachable_scheduler_is_one_clear_line(demo, tmp_path):
    res = run_cli("build", "--src", demo, "--total", "60", "-o", tmp_path / "o",
                  "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9", expect=1)
    assert res.output.startswith("error: cannot reach the dask scheduler at tcp://127.0.0.1:9")
    assert res.output.count("\n") == 1 and not (tmp_path / "o").exists()
    res = run_cli("build", "--src", demo, "-o", tmp_path / "o", "--backend", "dask", "--scheduler", "nonsense", expect=1)
    assert res.output.startswith("error: cannot reach the dask scheduler at nonsense (") and res.output.count("\n") == 1


def test_scheduler_needs_the_dask_backend_and_dask_needs_a_scheduler(demo, tmp_path):
    res = run_cli("build", "--src", demo, "-o", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:9", expect=1)
    assert res.output == "error: --scheduler needs --backend dask\n"
    res = run_cli("build", "--src", demo, "-o", tmp_path / "o", "--backend", "dask", expect=1)
    assert "--backend dask needs --scheduler ADDRESS" in res.output
