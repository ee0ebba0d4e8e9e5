"""``--force`` replaces only what sirst-synth wrote, for every command that takes it
(sirst_synth/run/owned.py): foreign files beside its output stay byte-identical, and an output
holding foreign files and no record of the tool is refused, with or without ``--force``."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sirst_synth.run.owned import remove_owned, replace_folder, survey

from conftest import run_cli, tree_digest

FOREIGN = {"notes.txt": b"mine\n", "value_result/x_PD_FA_255.mat": b"mat", "SIRST3/img_idx/train_SIRST3.txt": b"a\n"}


@pytest.fixture(scope="module")
def bank(demo: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("force") / "noise.h5"
    run_cli("sample-noise", "--src", demo, "-o", out, "-j", "1")
    return out


#: command -> (arguments writing ``out``, the folder the command writes given ``out``)
FOLDER_COMMANDS: dict[str, Callable[[Path, Path, Path], list]] = {
    "build": lambda demo, bank, out: ["build", "--src", demo, "-o", out, "--total", "30", "-j", "1"],
    "displace": lambda demo, bank, out: ["displace", "--src", demo, "--noise", bank, "--alpha", "0.1", "-o", out, "-j", "1"],
    "negaug": lambda demo, bank, out: ["negaug", "--src", demo, "-o", out, "-j", "1"],
    "build --layout mshnet": lambda demo, bank, out: ["build", "--src", demo, "-o", out, "--total", "30", "-j", "1",
                                                      "--layout", "mshnet"],
    "build --layout basicirstd": lambda demo, bank, out: ["build", "--src", demo, "-o", out.parent, "--total", "30",
                                                          "-j", "1", "--layout", "basicirstd", "--name", out.name],
    "import": lambda demo, bank, out: ["import", "dnanet", demo, "-o", out],
    "export --to yolo": lambda demo, bank, out: ["export", demo, "--to", "yolo", "-o", out],
    "export --to basicirstd": lambda demo, bank, out: ["export", demo, "--to", "basicirstd", "--name", out.name,
                                                       "-o", out.parent],
}


def put(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def same(root: Path, files: dict[str, bytes]) -> bool:
    return all((root / rel).read_bytes() == data for rel, data in files.items())


@pytest.mark.parametrize("command", sorted(FOLDER_COMMANDS))
def test_a_folder_of_foreign_files_is_refused_even_with_force(command, demo, bank, tmp_path):
    out = tmp_path / "datasets" / "SIRST-5K"
    put(out, FOREIGN)
    before = tree_digest(tmp_path)
    for force in ((), ("--force",)):
        result = run_cli(*FOLDER_COMMANDS[command](demo, bank, out), *force, expect=1)
        assert result.output.count("\n") == 1 and result.output.startswith(f"error: {out}: holds ")
        assert "SIRST3/ (1 file), notes.txt, value_result/ (1 file), not written by sirst-synth" in result.output
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("command", sorted(FOLDER_COMMANDS))
def test_force_replaces_its_output_and_keeps_foreign_files(command, demo, bank, tmp_path):
    out = tmp_path / "datasets" / "SIRST-5K"
    args = FOLDER_COMMANDS[command](demo, bank, out)
    run_cli(*args)
    first = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    put(out, FOREIGN)
    neighbour = tmp_path / "datasets" / "NUDT-SIRST"
    put(neighbour, {"img_idx/train_NUDT-SIRST.txt": b"a\n"})
    assert "--force" in run_cli(*args, expect=1).output
    run_cli(*args, "--force")
    assert same(out, FOREIGN) and same(neighbour, {"img_idx/train_NUDT-SIRST.txt": b"a\n"})
    again = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert again == first | set(FOREIGN) and not (tmp_path / "datasets" / "SIRST-5K.building").exists()


@pytest.mark.parametrize("command", ["sample-noise", "build --format h5"])
def test_force_replaces_only_an_hdf5_file_of_the_tool(command, demo, tmp_path):
    out = tmp_path / "out.h5"
    args = (["sample-noise", "--src", demo, "-o", out, "-j", "1"] if command == "sample-noise"
            else ["build", "--src", demo, "-o", out, "--format", "h5", "--total", "30", "-j", "1"])
    out.write_bytes(b"someone's file")
    result = run_cli(*args, "--force", expect=1)
    assert result.output == (f"error: {out}: exists and is not an HDF5 file written by sirst-synth; choose another -o "
                             "(--force replaces only what sirst-synth wrote)\n")
    assert out.read_bytes() == b"someone's file"
    out.unlink()
    run_cli(*args)
    run_cli(*args, "--force")


def test_force_refuses_a_foreign_file_where_the_export_writes(demo, tmp_path):
    out = tmp_path / "out"
    run_cli("export", demo, "--to", "mshnet", "-o", out)
    (out / "images" / "mine.png").write_bytes(b"x")  # foreign, but no clash: kept
    first = sorted(p.name for p in (out / "images").iterdir())[0]
    run_cli("export", demo, "--to", "mshnet", "-o", out, "--force")
    assert (out / "images" / "mine.png").read_bytes() == b"x"
    record = out / "sirst-synth-export.json"
    text = record.read_text()
    record.write_text(text.replace(f'"images/{first}",\n', ""))  # the record no longer names that image
    result = run_cli("export", demo, "--to", "mshnet", "-o", out, "--force", expect=1)
    assert result.output == (f"error: {out}: holds 1 file(s) not written by sirst-synth where this export writes "
                             f"(images/{first}); move them or choose another -o\n")
    assert record.read_text() != text  # nothing changed


def test_survey_and_remove_owned(tmp_path):
    root = tmp_path / "d"
    put(root, {"sirst-synth-export.json": b'{"written": ["images/a.png", "img_idx/train_X.txt", "../x"]}',
               "images/a.png": b"a", "images/b.png": b"b", "img_idx/train_X.txt": b"a\n", ".x.png.12.tmp": b"",
               ".sirst-synth-runs.jsonl": b"{}\n", ".sirst-synth-lock": b"{}"})
    found = survey(root)
    assert found.records == ["sirst-synth-export.json"]
    assert sorted(found.owned) == [".sirst-synth-runs.jsonl", ".x.png.12.tmp", "images/a.png", "img_idx/train_X.txt",
                                   "sirst-synth-export.json"]
    assert found.foreign == ["images/b.png"] and found.describe_foreign() == "images/ (1 file)"
    remove_owned(found)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [".sirst-synth-lock", "images",
                                                                                "images/b.png"]


def test_replace_folder_puts_the_new_files_beside_foreign_ones(tmp_path):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    put(out, {"sirst-synth-export.json": b'{"written": ["a.txt"]}', "a.txt": b"old", "notes.txt": b"mine"})
    put(tmp, {"sirst-synth-export.json": b'{"written": ["b/c.txt"]}', "b/c.txt": b"new"})
    replace_folder(tmp, out, "export")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "b/c.txt", "notes.txt", "sirst-synth-export.json"]
    assert not tmp.exists() and (out / "notes.txt").read_bytes() == b"mine"
