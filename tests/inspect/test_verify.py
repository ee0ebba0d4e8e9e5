"""``sirst-synth verify``: an intact build passes; each kind of damage fails, naming the file."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sirst_synth.inspect.verify import verify_dataset

from conftest import demo_build, run_cli
from support import ids, manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A small build of the demo data (150 training + 20 test images), made once for this module."""
    return demo_build(tmp_path_factory.mktemp("verify"), 150)


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the build, free to damage."""
    return Path(shutil.copytree(built, tmp_path / "out"))


def verify(root: Path, *options: str, expect: int) -> list[str]:
    """Output lines of ``sirst-synth verify`` (its verdict's seconds left out), asserting its exit status."""
    lines = run_cli("verify", root, "-j", "1", *options, expect=expect).output.splitlines()
    return [re.sub(r", in \d+\.\d s\b", "", line) for line in lines]


def failing(root: Path, rel: str) -> list[str]:
    """verify exits 1; return the problem lines naming ``root/rel``."""
    lines = verify(root, expect=1)
    assert lines[-1].startswith(f"verify: {root} fails: ") and "problem" in lines[-1]
    return [line for line in lines if line.startswith(f"{root / rel}: ")]


def rewrite_manifest(root: Path, edit) -> None:
    rows = manifest(root)
    rows = edit(rows)
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_intact_build_passes_with_exit_0(copy):
    lines = verify(copy, expect=0)
    assert lines == [f"verify: {copy} intact: 170 images, 340 files, hashes equal"]
    assert verify_dataset(copy) == []


def test_two_workers_report_the_same(copy):
    assert verify(copy, "-j", "2", expect=0) == verify(copy, expect=0)
    rows = manifest(copy)
    for i in (160, 100, 10):  # one per batch of 64 ids: problems still come in manifest order
        (copy / "images" / f"{rows[i]['id']}.png").unlink()
    lines = verify(copy, "-j", "2", expect=1)
    assert lines == verify(copy, expect=1)
    assert lines[:3] == [f"{copy}/images/{rows[i]['id']}.png: missing (listed in manifest.csv)" for i in (10, 100, 160)]


def test_one_flipped_byte_of_one_image_fails_naming_it(copy):
    victim = next(r["id"] for r in manifest(copy) if r["kind"] == "negative")
    path = copy / "images" / f"{victim}.png"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    lines = verify(copy, expect=1)
    assert lines == [f"{path}: sha256 differs from manifest.csv (file changed or corrupted)", f"verify: {copy} fails: 1 problem"]


def test_deleted_mask_fails_naming_it(copy):
    victim = manifest(copy)[40]["id"]
    (copy / "masks" / f"{victim}.png").unlink()
    assert failing(copy, f"masks/{victim}.png") == [f"{copy}/masks/{victim}.png: missing (listed in manifest.csv)"]


def test_deleted_image_fails_naming_it(copy):
    (copy / "images" / "demo_0001.png").unlink()
    assert len(failing(copy, "images/demo_0001.png")) == 1


def test_stray_file_in_the_tools_folders_fails_naming_it(copy):
    """A file in images/, masks/ or the split folder is the tool's misplaced file: a failure.
    Files elsewhere are foreign (a trainer's): listed, one line per top-level entry."""
    for rel in ("images/extra.png", "notes.txt", "50_50/val.txt", "sub/deep/x.bin", "sub/y.bin"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(b"x")
    lines = verify(copy, expect=1)
    assert lines[:-1] == [f"{copy / rel}: stray file (not listed in manifest.csv)"
                          for rel in sorted(("images/extra.png", "50_50/val.txt"))] + [
        f"{copy}/notes.txt: foreign file (not written by sirst-synth)",
        f"{copy}/sub/: foreign folder (2 files not written by sirst-synth)"]
    assert lines[-1] == f"verify: {copy} fails: 2 problems; 2 foreign entries not checked (--strict fails on them)"


def test_interrupted_build_leftovers_are_named(copy):
    (copy / ".sirst-synth-journal").write_text("{}")
    (copy / ".sirst-synth-state").mkdir()
    (copy / ".sirst-synth-state" / "part").write_text("x")
    (copy / "images" / ".demo_0000_r1.png.4242.tmp").write_bytes(b"half")
    lines = verify(copy, expect=1)
    assert lines[:-1] == [
        f"{copy}/.sirst-synth-journal: left by an interrupted build; run build --resume",
        f"{copy}/.sirst-synth-state: left by an interrupted build; run build --resume",
        f"{copy}/images/.demo_0000_r1.png.4242.tmp: left by an interrupted build; run build --resume",
    ]


def test_edited_split_list_fails_naming_it(copy):
    path = copy / "50_50" / "train.txt"
    train = ids(copy, "50_50", "train")
    path.write_text("".join(f"{i}\n" for i in [train[1], train[0], *train[2:]]))
    assert failing(copy, "50_50/train.txt") == [
        f"{path}: order differs from the manifest at line 1: {train[1]!r}, manifest {train[0]!r}"]
    path.write_text("".join(f"{i}\n" for i in train[:-1]))
    assert failing(copy, "50_50/train.txt") == [f"{path}: 149 ids, the manifest has 150: lacks {train[-1]!r}"]
    (copy / "50_50" / "test.txt").unlink()
    assert failing(copy, "50_50/test.txt") == [f"{copy}/50_50/test.txt: split file not found"]


def test_missing_json_means_the_build_never_completed(copy):
    (copy / "sirst-synth.json").unlink()
    lines = verify(copy, expect=1)
    assert lines == [f"{copy}/sirst-synth.json: missing: the build never completed (finish it with build --resume)",
                     f"verify: {copy} fails: 1 problem"]
    # the split folder is found without the json: a damaged list is still reported
    (copy / "50_50" / "test.txt").write_text("")
    assert len(failing(copy, "50_50/test.txt")) == 1


def test_json_counts_must_equal_the_manifest(copy):
    info = json.loads((copy / "sirst-synth.json").read_text())
    assert info["counts"]["negative"] > 0
    info["counts"]["negative"] -= 1
    (copy / "sirst-synth.json").write_text(json.dumps(info))
    n = info["counts"]["negative"]
    assert failing(copy, "sirst-synth.json") == [f"{copy}/sirst-synth.json: counts.negative is {n}, the manifest has {n + 1}"]
    (copy / "sirst-synth.json").write_text("{not json")
    assert failing(copy, "sirst-synth.json")[0].startswith(f"{copy}/sirst-synth.json: not valid JSON")


def test_mask_of_another_size_fails_even_with_matching_hash(copy):
    victim = manifest(copy)[25]["id"]
    ok, png = cv2.imencode(".png", np.zeros((7, 9), np.uint8))
    (copy / "masks" / f"{victim}.png").write_bytes(png.tobytes())
    digest = hashlib.sha256(png.tobytes()).hexdigest()
    rewrite_manifest(copy, lambda rows: [{**r, "sha256_mask": digest} if r["id"] == victim else r for r in rows])
    assert failing(copy, f"masks/{victim}.png") == [f"{copy}/masks/{victim}.png: 7x9 mask for a 256x256 image"]


def test_undecodable_image_with_matching_hash_fails(copy):
    victim = manifest(copy)[3]["id"]
    (copy / "images" / f"{victim}.png").write_bytes(b"not a png")
    digest = hashlib.sha256(b"not a png").hexdigest()
    rewrite_manifest(copy, lambda rows: [{**r, "sha256_image": digest} if r["id"] == victim else r for r in rows])
    problems = failing(copy, f"images/{victim}.png")
    assert len(problems) == 1 and "cannot decode" in problems[0]


def test_duplicate_manifest_id_fails_naming_it(copy):
    rewrite_manifest(copy, lambda rows: rows + [rows[0]])
    problems = failing(copy, "manifest.csv")
    assert problems == [f"{copy}/manifest.csv: line 172: id {manifest(copy)[0]['id']!r} is listed twice"]


def test_manifest_row_not_in_the_lists_and_unknown_split(copy):
    def edit(rows):
        rows[0] = {**rows[0], "split": "val"}
        return rows

    rewrite_manifest(copy, edit)
    lines = verify(copy, expect=1)
    first = manifest(copy)[0]["id"]
    assert f"{copy}/manifest.csv: line 2: id {first!r} has split 'val', not train or test" in lines
    assert any(line.startswith(f"{copy}/50_50/train.txt: 150 ids, the manifest has 149") for line in lines)


def test_unusable_folders_stop_with_one_error(copy, tmp_path):
    result = run_cli("verify", tmp_path / "nowhere", expect=1)
    assert result.output == f"error: {tmp_path / 'nowhere'}: folder not found\n"
    result = run_cli("verify", copy / "manifest.csv", expect=1)
    assert result.output == f"error: {copy / 'manifest.csv'}: not a folder\n"
    (copy / "manifest.csv").unlink()
    result = run_cli("verify", copy, expect=1)
    assert result.output.startswith(f"error: {copy}/manifest.csv: not found; {copy} is not a finished sirst-synth dataset")
    (tmp_path / "SIRST-5K.h5").write_bytes(b"")
    result = run_cli("verify", tmp_path / "SIRST-5K.h5", expect=1)
    assert result.output == f"error: {tmp_path / 'SIRST-5K.h5'}: not a folder (an HDF5 build: verify checks folder builds only)\n"
    result = run_cli("verify", copy, "-j", "0", expect=1)
    assert result.output.startswith("error: -j 0 means 0 workers")


def test_source_dataset_is_not_a_built_one(demo):
    result = run_cli("verify", demo, expect=1)
    assert "manifest.csv: not found" in result.output


def test_nudt_sirst_build_is_intact(nudt_build):
    lines = verify(nudt_build, "-j", "2", expect=0)
    assert lines == [f"verify: {nudt_build} intact: 6226 images, 12452 files, hashes equal"]


def test_verify_never_imports_torch(built):
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom sirst_synth.cli import main\n"
            f"r = CliRunner().invoke(main, ['verify', {str(built)!r}, '-j', '1'])\n"
            "assert r.exit_code == 0, r.output\nprint('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_a_trainers_files_are_foreign_and_fail_only_with_strict(copy):
    """DNANet writes value_result/ inside the dataset: listed as foreign, one line for the folder."""
    for rel in ("value_result/NUDT_best_IoU.log", "value_result/PD_FA_best.log", "mIoU.txt"):
        (copy / rel).parent.mkdir(exist_ok=True)
        (copy / rel).write_text("0.5\n")
    foreign = [f"{copy}/mIoU.txt: foreign file (not written by sirst-synth)",
               f"{copy}/value_result/: foreign folder (2 files not written by sirst-synth)"]
    lines = verify(copy, expect=0)
    assert lines == foreign + [f"verify: {copy} intact: 170 images, 340 files, hashes equal; 2 foreign entries not "
                               "checked (--strict fails on them)"]
    lines = verify(copy, "--strict", expect=1)
    assert lines[:-1] == foreign
    assert lines[-1] == f"verify: {copy} fails --strict: 2 foreign entries (its own 170 images, 340 files, hashes equal)"
    assert verify_dataset(copy) == [] and verify_dataset(copy, strict=True) == foreign


def test_run_log_is_the_tools_and_a_lock_is_named(copy):
    assert (copy / ".sirst-synth-runs.jsonl").is_file()
    (copy / ".sirst-synth-lock").write_text("{}")
    assert failing(copy, ".sirst-synth-lock") == [
        f"{copy}/.sirst-synth-lock: the lock of a command writing this folder, or left by one killed; "
        "wait for it, or run build --resume"]
