"""sirst_synth.run.folder: refusing unsafe outputs, starting or resuming a build, completing it."""
from __future__ import annotations

import dataclasses
import json

import pytest

from sirst_synth.errors import OutputError, ResumeError
from sirst_synth.run.folder import check_output, check_output_file, count_kinds, finish_output, remove_temp_files, start_folder
from sirst_synth.run.state import RunMode, RunRecord, finished_record
from sirst_synth.store.layout import INFO_NAME, STATE_NAME, state_dir, temp_path
from sirst_synth.store.manifest import COLUMNS, new_row

SPLIT = "50_50"
RUN = RunRecord("build", {"split": SPLIT, "alpha": 0.1}, "ab" * 32)


@pytest.fixture
def src(tmp_path):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    return src


def rows():
    return [
        new_row(id="a", split="train", kind="original", source_id="a", group="a"),
        new_row(id="a_r0", split="train", kind="displaced", source_id="a", group="a_r0"),
        new_row(id="a_r0_t1_k1", split="train", kind="negative", source_id="a", group="a_r0"),
        new_row(id="b", split="test", kind="original", source_id="b", group="b"),
    ]


def test_refuses_an_output_equal_to_the_source(src):
    with pytest.raises(OutputError, match="is the source or inside it"):
        check_output(src, src, force=True)


def test_refuses_an_output_inside_the_source(src):
    with pytest.raises(OutputError, match="is the source or inside it"):
        check_output(src / "out", src, force=True)


def test_refuses_a_non_empty_folder_without_force(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    finish_output(out, SPLIT, rows(), {"command": "build", "parameters": RUN.parameters})
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds a finished build; --resume with the same options checks it and has "
                                          "nothing to do, --force builds it again"):
        check_output(out, src, force=False)
    check_output(out, src, force=True)
    (out / "sirst-synth.json").unlink()
    with pytest.raises(OutputError, match="not empty; use --force"):
        check_output(out, src, force=False)


def test_refuses_a_folder_of_foreign_files_even_with_force(src, tmp_path):
    out = tmp_path / "out"
    (out / "IRDST" / "img_idx").mkdir(parents=True)
    (out / "IRDST" / "img_idx" / "train_IRDST-real.txt").write_text("a\n")
    (out / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(OutputError) as exc:
            check_output(out, src, force=force)
        assert str(exc.value) == (f"{out}: holds IRDST/ (1 file), notes.txt, not written by sirst-synth; choose "
                                  "another -o (--force replaces only what sirst-synth wrote)")


def test_force_refuses_foreign_files_in_the_image_folders(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    finish_output(out, SPLIT, rows(), {"command": "build", "parameters": RUN.parameters})
    (out / "images" / "mine.png").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"1 lie in its image folders \(images/mine\.png\)"):
        check_output(out, src, force=True)


def test_a_non_empty_folder_with_build_state_points_to_resume(src, tmp_path):
    out = tmp_path / "out"
    state_dir(out).mkdir(parents=True)
    with pytest.raises(OutputError, match="use --resume"):
        check_output(out, src, force=False)


def test_refuses_resume_on_a_folder_that_is_no_build(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ResumeError, match="not a build of this tool"):
        check_output(out, src, force=False, resume=True)


def test_force_refuses_to_clear_a_folder_holding_the_source(tmp_path):
    src = tmp_path / "data" / "src"
    src.mkdir(parents=True)
    with pytest.raises(OutputError, match="would clear a folder that holds the source"):
        check_output(tmp_path / "data", src, force=True)


def test_refuses_an_output_that_is_a_file(src, tmp_path):
    out = tmp_path / "out"
    out.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_output(out, src, force=True)


def test_check_output_file_refuses_inside_source_folder_and_existing_file(src, tmp_path):
    with pytest.raises(OutputError, match="inside the source"):
        check_output_file(src / "noise.h5", src, force=True)
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path, src, force=True)
    existing = tmp_path / "noise.h5"
    existing.write_bytes(b"x")
    with pytest.raises(OutputError, match="exists; use --force"):
        check_output_file(existing, src, force=False)
    check_output_file(existing, src, force=True)
    with pytest.raises(OutputError, match="exists and is not an HDF5 file written by sirst-synth"):
        check_output_file(existing, src, force=True, owned_only=True)


def test_fresh_start_clears_only_the_tools_files_and_makes_the_folders(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    for r in rows():
        for folder in ("images", "masks"):
            (out / folder / f"{r['id']}.png").write_bytes(b"png")
    finish_output(out, SPLIT, rows(), {"command": "build", "parameters": RUN.parameters})
    (out / ".sirst-synth-runs.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")
    (out / SPLIT / "readme.txt").write_text("mine")
    (out / "value_result").mkdir()
    (out / "value_result" / "x.mat").write_text("mine")
    assert start_folder(out, src, SPLIT, RUN, force=True, resume=False) is RunMode.FRESH
    assert sorted(p.name for p in out.iterdir()) == sorted([STATE_NAME, SPLIT, "images", "masks", "notes.txt",
                                                            "value_result"])
    assert not any((out / "images").iterdir()) and (out / "masks").is_dir()
    assert [p.name for p in (out / SPLIT).iterdir()] == ["readme.txt"]
    assert (out / "value_result" / "x.mat").read_text() == "mine"
    assert json.loads((state_dir(out) / "run.json").read_text()) == dataclasses.asdict(RUN)


def test_fresh_start_refuses_foreign_split_lists(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    finish_output(out, SPLIT, rows(), {"command": "build", "parameters": RUN.parameters})
    (out / "idx_1").mkdir()
    (out / "idx_1" / "train.txt").write_text("mine\n")
    with pytest.raises(OutputError, match=r"idx_1/train\.txt is one the build writes"):
        start_folder(out, src, "idx_1", RUN, force=True, resume=False)
    assert (out / "idx_1" / "train.txt").read_text() == "mine\n" and (out / INFO_NAME).is_file()


def test_resume_of_the_same_run_is_resumed_and_drops_temp_files(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    done = out / "images" / "a.png"
    done.write_bytes(b"png")
    cut = temp_path(out / "images" / "b.png")
    cut.write_bytes(b"half")
    assert start_folder(out, src, SPLIT, RUN, force=False, resume=True) is RunMode.RESUMED
    assert done.read_bytes() == b"png"
    assert not cut.exists()


def test_resume_with_a_different_parameter_is_refused(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    (out / "images" / "a.png").write_bytes(b"png")
    other = RunRecord(RUN.command, {"split": SPLIT, "alpha": 0.3}, RUN.fingerprint)
    with pytest.raises(ResumeError, match=r"alpha was 0\.1, now 0\.3"):
        start_folder(out, src, SPLIT, other, force=False, resume=True)
    assert (out / "images" / "a.png").exists()


def test_resume_of_a_complete_build_of_the_same_run_is_complete(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    finish_output(out, SPLIT, rows(), {"command": RUN.command, "parameters": RUN.parameters,
                                       "source": {"fingerprint": RUN.fingerprint}})
    assert start_folder(out, src, SPLIT, RUN, force=False, resume=True) is RunMode.COMPLETE


def test_resume_on_an_empty_folder_starts_fresh(src, tmp_path):
    out = tmp_path / "out"
    assert start_folder(out, src, SPLIT, RUN, force=False, resume=True) is RunMode.FRESH
    assert (state_dir(out) / "run.json").is_file()


def test_finish_output_writes_lists_manifest_and_record_then_removes_the_state(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    counts = finish_output(out, SPLIT, iter(rows()), {"command": "build"})
    assert counts == {"train": 3, "test": 1, "original": 1, "displaced": 1, "negative": 1}
    assert (out / SPLIT / "train.txt").read_text() == "a\na_r0\na_r0_t1_k1\n"
    assert (out / SPLIT / "test.txt").read_text() == "b\n"
    lines = (out / "manifest.csv").read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert [line.split(",")[0] for line in lines[1:]] == ["a", "a_r0", "a_r0_t1_k1", "b"]
    info = json.loads((out / INFO_NAME).read_text())
    assert info["counts"] == counts and info["command"] == "build"
    assert not state_dir(out).exists()


def test_the_completion_mark_is_absent_until_finish_output(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)
    assert finished_record(out) is None
    assert not (out / INFO_NAME).exists()
    finish_output(out, SPLIT, rows(), {"command": "build"})
    done = finished_record(out)
    assert done is not None and done["command"] == "build"


def test_a_failure_while_streaming_rows_leaves_no_list_manifest_or_record(src, tmp_path):
    out = tmp_path / "out"
    start_folder(out, src, SPLIT, RUN, force=False, resume=False)

    def broken():
        yield rows()[0]
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        finish_output(out, SPLIT, broken(), {"command": "build"})
    assert not (out / "manifest.csv").exists()
    assert not (out / INFO_NAME).exists()
    assert sorted(p.name for p in (out / SPLIT).iterdir()) == []
    assert state_dir(out).is_dir()


def test_count_kinds_counts_splits_and_only_train_kinds():
    assert count_kinds(rows()) == {"train": 3, "test": 1, "original": 1, "displaced": 1, "negative": 1}


def test_remove_temp_files_deletes_only_temporary_files_in_out_and_its_folders(tmp_path):
    (tmp_path / "images").mkdir()
    keep = [tmp_path / "images" / "a.png", tmp_path / "manifest.csv", tmp_path / "images" / ".hidden.png"]
    for path in keep:
        path.write_bytes(b"x")
    temps = [temp_path(tmp_path / "images" / "b.png"), temp_path(tmp_path / "manifest.csv")]
    for path in temps:
        path.write_bytes(b"x")
    assert remove_temp_files(tmp_path) == 2
    assert all(p.exists() for p in keep)
    assert not any(p.exists() for p in temps)
