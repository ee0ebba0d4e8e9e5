"""sirst_synth.run.journal: the journals of an unfinished build, replayed by --resume."""
from __future__ import annotations

import json

import pytest

from sirst_synth.errors import ResumeError
from sirst_synth.progress import silent
from sirst_synth.run.journal import Journal, run_recorded
from sirst_synth.store.manifest import new_row


def row(id_: str) -> dict[str, str]:
    return new_row(id=id_, split="train", kind="original", source_id=id_, group=id_)


def record(path, *jobs: tuple[str, list[str]]) -> None:
    journal = Journal(path)
    for key, ids in jobs:
        journal.append(key, [row(i) for i in ids])
    journal.close()


def make_row(job: str) -> list[dict[str, str]]:
    return [row(job)]


def test_a_last_line_cut_short_by_a_kill_is_dropped_and_the_file_truncated(tmp_path):
    path = tmp_path / "units.jsonl"
    record(path, ("a", ["a"]), ("b", ["b"]))
    whole = path.read_bytes()
    path.write_bytes(whole + b'["c",[["c","tra')
    journal = Journal(path)
    assert path.read_bytes() == whole
    assert journal.take("a") == [row("a")]
    assert journal.take("b") == [row("b")]
    assert journal.take("c") is None


def test_a_corrupt_middle_line_is_one_resume_error_naming_file_and_line(tmp_path):
    path = tmp_path / "units.jsonl"
    record(path, ("a", ["a"]))
    path.write_bytes(path.read_bytes() + b"garbage\n" + b'["c",[]]\n')
    with pytest.raises(ResumeError, match=r"units\.jsonl: line 2: not a journal line"):
        Journal(path)


def test_replay_returns_recorded_rows_in_order_then_none(tmp_path):
    path = tmp_path / "units.jsonl"
    record(path, ("a", ["a", "a_t1_k1"]), ("b", ["b"]))
    journal = Journal(path)
    assert journal.take("a") == [row("a"), row("a_t1_k1")]
    assert journal.take("b") == [row("b")]
    assert journal.take("c") is None
    assert journal.take("d") is None


def test_a_recorded_key_other_than_the_plans_is_an_error(tmp_path):
    path = tmp_path / "units.jsonl"
    record(path, ("a", ["a"]))
    with pytest.raises(ResumeError, match="records job 'a' where the plan has 'x'"):
        Journal(path).take("x")


def test_run_recorded_yields_recorded_rows_then_runs_only_the_missing_jobs(tmp_path):
    path = tmp_path / "units.jsonl"
    record(path, ("a", ["a"]), ("b", ["b"]))
    calls = []

    def job(name):
        calls.append(name)
        return [row(name)]

    jobs = ["a", "b", "c", "d"]
    got = list(run_recorded(job, jobs, jobs, Journal(path), 1, "test", silent))
    assert [rows[0]["id"] for rows in got] == jobs
    assert calls == ["c", "d"]


def test_run_recorded_records_the_jobs_it_runs_so_a_second_run_runs_none(tmp_path):
    path = tmp_path / "units.jsonl"
    jobs = ["a", "b", "c"]
    journal = Journal(path)
    list(run_recorded(make_row, jobs, jobs, journal, 1, "test", silent))
    journal.close()
    calls = []

    def job(name):
        calls.append(name)
        return [row(name)]

    got = list(run_recorded(job, jobs, jobs, Journal(path), 1, "test", silent))
    assert calls == []
    assert [rows[0]["id"] for rows in got] == jobs


def test_rows_streams_every_recorded_row_in_job_order(tmp_path):
    path = tmp_path / "units.jsonl"
    journal = Journal(path)
    journal.append("a", [row("a"), row("a_t1_k1")])
    journal.append("b", [])
    journal.append("c", [row("c")])
    assert [r["id"] for r in journal.rows()] == ["a", "a_t1_k1", "c"]


def test_rows_of_a_journal_never_written_is_empty(tmp_path):
    assert list(Journal(tmp_path / "none.jsonl").rows()) == []


def test_rows_keep_their_image_sums_through_the_journal_and_lines_without_sums_still_replay(tmp_path):
    from sirst_synth.store.manifest import SUMS

    path = tmp_path / "units.jsonl"
    with_sums = [{**row("a"), SUMS: (4, 10.0, 30.5)}, row("b")]
    journal = Journal(path)
    journal.append("a", with_sums)
    journal.close()
    path.open("a").write(json.dumps(["c", [[row("c")[c] for c in row("c")]]]) + "\n")  # a line without sums
    replay = Journal(path)
    assert replay.take("a") == with_sums
    assert replay.take("c") == [row("c")]
    assert replay.take("d") is None
