"""Every bad input gets exit status 1 and one line naming the file or id, before anything is written.

Each source defect is tried on every command that reads a dataset (sample-noise, displace, negaug,
build); afterwards the source is unchanged and no output exists, complete-looking or not.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, tree_digest
from support import manifest

COMMANDS = ("sample-noise", "displace", "negaug", "build")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A demo dataset of 8 images (4 train, 4 test)."""
    root = tmp_path_factory.mktemp("small") / "src"
    run_cli("demo-data", root, "-n", "8")
    return root


@pytest.fixture(scope="module")
def bank(small: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bank") / "noise.h5"
    run_cli("sample-noise", "--src", small, "-o", path)
    return path


def command_args(command: str, src: Path, out: Path, bank: Path) -> list:
    if command == "sample-noise":
        return [command, "--src", src, "-o", out / "noise.h5"]
    if command == "displace":
        return [command, "--src", src, "--noise", bank, "--alpha", "0.1", "-o", out / "data"]
    if command == "negaug":
        return [command, "--src", src, "-o", out / "data"]
    return [command, "--src", src, "--total", "20", "-o", out / "data"]


def first_train(src: Path) -> str:
    return (src / "50_50" / "train.txt").read_text().split()[0]


def _train(src: Path) -> list[str]:
    return (src / "50_50" / "train.txt").read_text().split()


def _write_list(src: Path, part: str, ids: list[str]) -> None:
    (src / "50_50" / f"{part}.txt").write_bytes("".join(i + "\n" for i in ids).encode("utf-8"))


# Each defect edits a copy of the source and returns the text the error line must contain.

def empty_train(src: Path) -> str:
    _write_list(src, "train", [])
    return "train.txt lists no id"


def duplicate_id(src: Path) -> str:
    ids = _train(src)
    _write_list(src, "train", ids + [ids[1]])
    return f"train id '{ids[1]}': listed 2 times"


def leaked_id(src: Path) -> str:
    test = (src / "50_50" / "test.txt").read_text().split()
    _write_list(src, "train", _train(src) + [test[0]])
    return f"'{test[0]}': also listed in the test split (test leakage)"


#: why each unsafe id is refused (store/layout.py id_problem, the one rule)
UNSAFE = {"../x": "has an empty, '.' or '..' folder part (ids must stay inside the dataset)",
          "a\\b": "contains a backslash; folder parts are separated by /",
          "/etc/passwd": "is an absolute path; ids name files inside the dataset",
          "nul\0byte": "contains a control character (NUL, tab, ...)"}


def traversal(name: str) -> Callable[[Path], str]:
    def edit(src: Path) -> str:
        _write_list(src, "train", _train(src) + [name])
        return f"{name!r}: {UNSAFE[name]}"
    edit.__name__ = f"traversal({name!r})"
    return edit


def missing(folder: str) -> Callable[[Path], str]:
    def edit(src: Path) -> str:
        victim = first_train(src)
        (src / folder / f"{victim}.png").unlink()
        return f"{folder}/{victim}.png: file not found"
    edit.__name__ = f"missing_{folder}"
    return edit


def undecodable_image(src: Path) -> str:
    victim = first_train(src)
    (src / "images" / f"{victim}.png").write_bytes(b"this is not a PNG file at all")
    return f"images/{victim}.png: cannot decode"


def truncated_image(src: Path) -> str:
    victim = first_train(src)
    path = src / "images" / f"{victim}.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return f"images/{victim}.png: cannot decode"


def size_mismatch(src: Path) -> str:
    victim = first_train(src)
    Image.new("L", (17, 9)).save(src / "masks" / f"{victim}.png")
    return f"train id '{victim}': mask is 17x9 but image is"


def sixteen_bit(src: Path) -> str:
    victim = first_train(src)
    Image.fromarray(np.full((16, 16), 1000, np.uint16)).save(src / "images" / f"{victim}.png")
    return "16/32-bit integer) is not supported; an 8-bit gray or RGB image is needed"


def float_image(src: Path) -> str:
    victim = first_train(src)
    # a 32-bit float TIFF under the .png name: Pillow reads by content, so the mode is checked
    Image.fromarray(np.zeros((16, 16), np.float32)).save(src / "images" / f"{victim}.png", format="TIFF")
    return "32-bit float) is not supported; an 8-bit gray or RGB image is needed"


def missing_split(src: Path) -> str:
    shutil.move(src / "50_50", src / "other")
    return "50_50/train.txt: split file not found; split lists found: other/test.txt, other/train.txt"


DEFECTS = [
    missing_split, empty_train, duplicate_id, leaked_id,
    traversal("../x"), traversal("a\\b"), traversal("/etc/passwd"), traversal("nul\0byte"),
    missing("images"), missing("masks"), undecodable_image, truncated_image, size_mismatch, sixteen_bit, float_image,
]


def assert_nothing_written(out: Path) -> None:
    leftovers = list(out.rglob("*")) if out.exists() else []
    assert leftovers == [], leftovers


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: d.__name__)
def test_bad_source_is_refused_naming_it_and_nothing_is_written(small, bank, tmp_path, command, defect):
    src = tmp_path / "src"
    shutil.copytree(small, src)
    expected = defect(src)
    before = tree_digest(src)
    out = tmp_path / "out"
    out.mkdir()
    res = run_cli(*command_args(command, src, out, bank), "-j", "1", expect=1)
    lines = [line for line in res.output.splitlines() if line]
    assert any(expected in line for line in lines), res.output
    assert all(line.startswith("error: ") for line in lines) and "Traceback" not in res.output
    assert tree_digest(src) == before
    assert_nothing_written(out)


def test_mask_values_other_than_0_and_255_warn_then_count_as_targets(small, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(small, src)
    victim = first_train(src)
    mask = np.asarray(Image.open(src / "masks" / f"{victim}.png"))
    soft = np.where(mask > 0, 128, 0).astype(np.uint8)
    Image.fromarray(soft).save(src / "masks" / f"{victim}.png")
    res = subprocess.run([sys.executable, "-m", "sirst_synth", "build", "--src", str(src), "--total", "20",
                          "-o", str(tmp_path / "out"), "-j", "1"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stderr == (f"warning: train id '{victim}': mask has values other than 0 and 255 (128); "
                          "pixels > 0 are used as targets\n")
    rows = manifest(tmp_path / "out")
    targets = {r["target"] for r in rows if r["kind"] == "negative" and r["source_id"] == victim}
    n_targets = cv2.connectedComponents((soft > 0).astype(np.uint8), connectivity=8)[0] - 1
    assert targets <= {str(t) for t in range(1, n_targets + 1)}


@pytest.mark.parametrize("args, expected", [
    (["--alpha", "1.5"], "--alpha must be in [0, 1], got 1.5"),
    (["--alpha", "-0.1"], "--alpha must be in [0, 1], got -0.1"),
    (["--s", "4"], "--s must be odd and >= 1, got 4"),
    (["--s", "0"], "--s must be odd and >= 1, got 0"),
    (["--s", "-3"], "--s must be odd and >= 1, got -3"),
    (["--s", "301"], "--s: s=301 is larger than the 256x256 image (train id 'demo_0002')"),
    (["--grid", "0"], "--grid must be >= 1, got 0"),
    (["--grid", "200"], "regions need at least 2x2 pixels: use --grid <= 128"),
    (["--total", "3"], "--total 3 is smaller than the 4 original training images"),
    (["-j", "0"], "0 workers"),
])
def test_option_out_of_range_is_one_line_and_exit_1(small, tmp_path, args, expected):
    out = tmp_path / "out"
    res = run_cli("build", "--src", small, "--total", "20", "-o", out, *args, expect=1)
    assert expected in res.output, res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1
    assert not out.exists()


def test_a_refused_file_output_leaves_no_new_folder(small, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(small, src)
    missing("images")(src)
    run_cli("sample-noise", "--src", src, "-o", tmp_path / "new" / "sub" / "noise.h5", expect=1)
    run_cli("build", "--src", src, "--format", "h5", "-o", tmp_path / "new" / "x.h5", expect=1)
    assert not (tmp_path / "new").exists()
    res = run_cli("verify", small, "-j", "0", expect=1)
    assert res.output.startswith("error: -j 0 means 0 workers")


def test_stage_commands_check_their_options_too(small, bank, tmp_path):
    res = run_cli("displace", "--src", small, "--noise", bank, "--alpha", "2", "-o", tmp_path / "d", expect=1)
    assert res.output.strip() == "error: --alpha must be in [0, 1], got 2"
    res = run_cli("negaug", "--src", small, "--s", "2", "-o", tmp_path / "n", expect=1)
    assert res.output.strip() == "error: --s must be odd and >= 1, got 2"
    res = run_cli("sample-noise", "--src", small, "--grid", "1000", "-o", tmp_path / "b.h5", expect=1)
    assert "--grid <= 128" in res.output
    assert not any(tmp_path.iterdir())


# -- outputs -------------------------------------------------------------------------------------

def test_output_equal_to_or_inside_the_source_is_refused(small, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(small, src)
    before = tree_digest(src)
    for out in (src, src / "images", src / "sub" / "out"):
        res = run_cli("build", "--src", src, "--total", "20", "-o", out, expect=1)
        assert "output folder is the source or inside it" in res.output
    res = run_cli("sample-noise", "--src", src, "-o", src / "noise.h5", expect=1)
    assert "output file is inside the source" in res.output
    assert tree_digest(src) == before


def test_non_empty_output_needs_force_or_resume(small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = run_cli("build", "--src", small, "--total", "20", "-o", out, expect=1)
    assert f"{out}: holds notes.txt, not written by sirst-synth; choose another -o" in res.output
    res = run_cli("build", "--src", small, "--total", "20", "-o", out, "--force", expect=1)
    assert "(--force replaces only what sirst-synth wrote)" in res.output
    res = run_cli("build", "--src", small, "--total", "20", "-o", out, "--resume", expect=1)
    assert "not a build of this tool" in res.output
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1
    res = run_cli("build", "--src", small, "--total", "20", "-o", out, "--resume", "--force", expect=1)
    assert "exclude each other" in res.output


def test_output_below_a_file_is_one_clear_line(small, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run_cli("build", "--src", small, "--total", "20", "-o", blocker / "out", expect=1)
    assert res.output.startswith(f"error: {blocker / 'out'}") and res.output.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_unwritable_output_folder_is_one_clear_line(small, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        res = run_cli("build", "--src", small, "--total", "20", "-o", parent / "out", expect=1)
        assert "Permission denied" in res.output and res.output.count("\n") == 1
    finally:
        parent.chmod(0o755)


def _limit_file_size() -> None:
    """In the child: writes past 1 MiB fail with EFBIG, as on a full disk (SIGXFSZ ignored).
    The noise bank (in a temporary folder, 0.6 MiB) stays under the limit; the large source image does not."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))


def test_a_failed_write_is_one_clear_line_and_leaves_nothing_complete(tmp_path):
    """A write that fails mid-build (a full disk, simulated with RLIMIT_FSIZE) stops the build with
    one line naming the file; the folder is not marked complete and --resume finishes it later."""
    src = tmp_path / "big"
    run_cli("demo-data", src, "-n", "8")
    # a large image, so that copying it is a write over the limit
    noisy = np.random.default_rng(0).integers(0, 256, (1200, 1200), dtype=np.uint8)
    victim = first_train(src)
    Image.fromarray(noisy).save(src / "images" / f"{victim}.png")
    Image.fromarray(np.zeros((1200, 1200), np.uint8)).save(src / "masks" / f"{victim}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sirst_synth", "build", "--src", str(src), "--total", "20", "-o", str(out), "-j", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_limit_file_size)
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("error: ") and "cannot write (File too large)" in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not (out / "sirst-synth.json").exists() and not (out / "manifest.csv").exists()
    res = run_cli("build", "--src", src, "--total", "20", "-o", out, "-j", "1", "--resume")
    assert "(resumed)" in res.output
    assert run_cli("verify", out).exit_code == 0
