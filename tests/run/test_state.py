"""sirst_synth.run.state: the record of an unfinished build, and whether a run starts fresh, resumes or finds
its output complete."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sirst_synth.errors import ResumeError
from sirst_synth.run.state import RunMode, RunRecord, check_same_run, decide, read_run, write_run
from sirst_synth.store.layout import INFO_NAME, state_dir

RUN = RunRecord("build", {"alpha": 0.1, "s": 3}, "ab" * 32)
WHERE = "run.json"


def test_read_run_returns_what_write_run_wrote(tmp_path):
    write_run(tmp_path, RUN)
    assert state_dir(tmp_path).is_dir()
    assert read_run(tmp_path) == RUN


def test_read_run_without_a_record_is_none(tmp_path):
    assert read_run(tmp_path) is None


def test_read_run_of_a_broken_run_json_is_one_resume_error(tmp_path):
    write_run(tmp_path, RUN)
    (state_dir(tmp_path) / "run.json").write_text('{"command": "bu')
    with pytest.raises(ResumeError, match=r"run\.json: unreadable build record"):
        read_run(tmp_path)


def test_read_run_of_json_without_parameters_is_not_a_build_record(tmp_path):
    write_run(tmp_path, RUN)
    (state_dir(tmp_path) / "run.json").write_text(json.dumps(["build"]))
    with pytest.raises(ResumeError, match="not a build record"):
        read_run(tmp_path)


def test_check_same_run_accepts_the_same_run(tmp_path):
    check_same_run(tmp_path, RUN, RUN, WHERE)


def test_check_same_run_names_the_differing_parameter(tmp_path):
    now = replace(RUN, parameters={"alpha": 0.2, "s": 3})
    with pytest.raises(ResumeError, match=r"alpha was 0\.1, now 0\.2"):
        check_same_run(tmp_path, RUN, now, WHERE)


def test_check_same_run_names_a_parameter_added_since(tmp_path):
    now = replace(RUN, parameters={**RUN.parameters, "seed": 1})
    with pytest.raises(ResumeError, match="seed was None, now 1"):
        check_same_run(tmp_path, RUN, now, WHERE)


def test_check_same_run_refuses_another_command(tmp_path):
    with pytest.raises(ResumeError, match="interrupted 'build', not 'negaug'"):
        check_same_run(tmp_path, RUN, replace(RUN, command="negaug"), WHERE)


def test_check_same_run_refuses_a_changed_source(tmp_path):
    with pytest.raises(ResumeError, match="the source changed"):
        check_same_run(tmp_path, RUN, replace(RUN, fingerprint="cd" * 32), WHERE)


def test_decide_without_resume_is_fresh_whatever_the_folder_holds(tmp_path):
    write_run(tmp_path, RUN)
    assert decide(tmp_path, replace(RUN, parameters={"alpha": 0.9}), resume=False) is RunMode.FRESH


def test_decide_resumes_the_interrupted_run_and_refuses_another(tmp_path):
    assert decide(tmp_path, RUN, resume=True) is RunMode.FRESH  # nothing recorded: a fresh start
    write_run(tmp_path, RUN)
    assert decide(tmp_path, RUN, resume=True) is RunMode.RESUMED
    with pytest.raises(ResumeError, match=r"alpha was 0\.1, now 0\.2 \(.*run\.json\)"):
        decide(tmp_path, replace(RUN, parameters={"alpha": 0.2, "s": 3}), resume=True)


def test_decide_finds_a_finished_dataset_complete_and_names_the_output_a_user_named(tmp_path):
    record = {"command": "build", "parameters": RUN.parameters, "source": {"fingerprint": RUN.fingerprint}}
    (tmp_path / INFO_NAME).write_text(json.dumps(record))
    assert decide(tmp_path, RUN, resume=True) is RunMode.COMPLETE
    kept_elsewhere = tmp_path / "elsewhere"
    kept_elsewhere.mkdir()
    assert decide(kept_elsewhere, RUN, resume=True, finished=record) is RunMode.COMPLETE
    with pytest.raises(ResumeError, match=r"^out\.h5: the source changed"):
        decide(kept_elsewhere, replace(RUN, fingerprint="cd" * 32), True, record, named=kept_elsewhere.with_name("out.h5")
               .relative_to(tmp_path))
