"""The command line on the demo data: stage commands chained, determinism, refusals, summaries."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np

from conftest import run_cli, tree_digest
from support import ids, manifest, read


def test_version_and_help_list_every_command():
    assert "0.1.0" in run_cli("--version").output
    out = run_cli("--help").output
    for command in ("sample-noise", "displace", "negaug", "build", "demo-data"):
        assert command in out


def test_the_command_line_imports_no_numpy_opencv_or_h5py_until_a_command_runs():
    import subprocess
    import sys
    code = ("import sys\nimport sirst_synth.cli\n"
            "print(sorted(m for m in ('numpy', 'cv2', 'h5py', 'PIL', 'torch') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_stage_commands_chain_into_a_dataset(demo, tmp_path):
    before = tree_digest(demo)
    bank, disp, neg = tmp_path / "noise.h5", tmp_path / "disp", tmp_path / "neg"
    out = run_cli("sample-noise", "--src", demo, "-o", bank).output
    assert out.startswith("sample-noise:") and "patches" in out
    with h5py.File(bank) as f:
        assert {s.decode() for s in f["source_id"][()]} <= set(ids(demo, "50_50", "train"))
    out = run_cli("displace", "--src", demo, "--noise", bank, "--alpha", "0.2", "--rounds", "2", "-o", disp).output
    assert out.startswith("displace: 60 train (20 original, 40 displaced, 0 negative) + 20 test")
    out = run_cli("negaug", "--src", disp, "--s", "3", "--only", "displaced", "-o", neg).output
    assert out.startswith("negaug: ")
    rows = manifest(neg)
    train = ids(neg, "50_50", "train")
    assert [r["id"] for r in rows if r["split"] == "train"] == train
    negs = [r for r in rows if r["kind"] == "negative"]
    assert negs and {r["group"] for r in negs} <= {r["id"] for r in rows if r["kind"] == "displaced"}
    # negatives inherit their parent's noise provenance; originals were not negated
    parent = {r["id"]: r for r in rows}
    for r in negs:
        assert r["noise_source_id"] == parent[r["group"]]["noise_source_id"] and r["round"] == parent[r["group"]]["round"]
    assert all(not r["group"].startswith(r["source_id"] + "_t") for r in negs)
    assert ids(neg, "50_50", "test") == ids(demo, "50_50", "test")
    assert tree_digest(demo) == before


RUN_LOG = ".sirst-synth-runs.jsonl"  #: the one file that differs between identical runs


def test_build_is_identical_for_any_worker_count_and_rerun(demo, tmp_path):
    outs = []
    for name, jobs in (("a", "1"), ("b", "2"), ("c", "2")):
        out = tmp_path / name
        run_cli("build", "--src", demo, "--total", "150", "-o", out, "-j", jobs)
        outs.append(out)
    ref = {p.relative_to(outs[0]): p.read_bytes() for p in outs[0].rglob("*.*") if p.name != RUN_LOG}
    assert len(ref) == 2 * 170 + 4  # images, masks, two lists, manifest.csv and sirst-synth.json
    for out in outs[1:]:
        got = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.*") if p.name != RUN_LOG}
        assert got == ref


def test_seed_changes_the_noise_drawn(demo, tmp_path):
    run_cli("build", "--src", demo, "--total", "60", "-o", tmp_path / "s0", "--seed", "0")
    run_cli("build", "--src", demo, "--total", "60", "-o", tmp_path / "s1", "--seed", "1")
    a, b = manifest(tmp_path / "s0"), manifest(tmp_path / "s1")
    assert [r["noise_source_id"] for r in a] != [r["noise_source_id"] for r in b]


def test_total_cuts_the_last_unit_exactly(demo, tmp_path):
    for total in (20, 21, 97):
        out = tmp_path / f"t{total}"
        line = run_cli("build", "--src", demo, "--total", str(total), "-o", out).output
        assert line.startswith(f"build: {total} train")
        assert len(ids(out, "50_50", "train")) == total
        assert len(list((out / "images").iterdir())) == total + 20 == len(list((out / "masks").iterdir()))
    run_cli("build", "--src", demo, "--total", "19", "-o", tmp_path / "small", expect=1)


def test_tile_fit_keeps_the_patch_grain(demo, tmp_path):
    run_cli("build", "--src", demo, "--total", "21", "--fit", "tile", "--alpha", "1", "-o", tmp_path / "t")
    row = next(r for r in manifest(tmp_path / "t") if r["kind"] == "displaced")
    img = read(tmp_path / "t" / "images" / f"{row['id']}.png")
    assert np.array_equal(img[:32, :32], img[32:64, 32:64])   # alpha 1: the tiled 32x32 patch itself


def test_output_inside_source_or_not_empty_is_refused(demo, tmp_path):
    before = tree_digest(demo)
    res = run_cli("build", "--src", demo, "--total", "30", "-o", demo / "out", expect=1)
    assert "inside" in res.output
    res = run_cli("build", "--src", demo, "--total", "30", "-o", demo, expect=1)
    assert tree_digest(demo) == before
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for force in ((), ("--force",)):  # foreign files and no record of the tool: refused, even with --force
        res = run_cli("build", "--src", demo, "--total", "30", "-o", out, *force, expect=1)
        assert res.output == (f"error: {out}: holds notes.txt, not written by sirst-synth; choose another -o "
                              "(--force replaces only what sirst-synth wrote)\n")
    (out / "notes.txt").unlink()
    run_cli("build", "--src", demo, "--total", "30", "-o", out)
    (out / "notes.txt").write_text("mine")
    res = run_cli("build", "--src", demo, "--total", "30", "-o", out, expect=1)
    assert res.output == (f"error: {out}: holds a finished build; --resume with the same options checks it and has "
                          "nothing to do, --force builds it again (replacing what sirst-synth wrote there; other "
                          "files stay)\n")
    run_cli("build", "--src", demo, "--total", "30", "-o", out, "--force")
    assert len(ids(out, "50_50", "train")) == 30 and (out / "notes.txt").read_text() == "mine"


def test_bad_source_ids_are_listed_and_nothing_is_written(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    train = ids(src, "50_50", "train")
    (src / "masks" / f"{train[0]}.png").unlink()
    (src / "images" / f"{train[1]}.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    res = run_cli("build", "--src", src, "--total", "40", "-o", out, expect=1)
    assert train[0] in res.output and "not found" in res.output
    assert train[1] in res.output and "cannot decode" in res.output
    assert "Traceback" not in res.output and not out.exists()
    run_cli("build", "--src", src, "--total", "40", "-o", out, "--skip-invalid")
    info = json.loads((out / "sirst-synth.json").read_text())
    assert sorted(s["id"] for s in info["source"]["skipped_invalid"]) == sorted(train[:2])
    assert not set(train[:2]) & set(ids(out, "50_50", "train"))


def test_missing_split_names_the_splits_that_exist(demo, tmp_path):
    res = run_cli("build", "--src", demo, "--split", "idx_427", "-o", tmp_path / "o", expect=1)
    assert "idx_427" in res.output and "50_50/train.txt" in res.output


def test_empty_noise_bank_says_which_thresholds_to_relax(demo, tmp_path):
    res = run_cli("sample-noise", "--src", demo, "--max-var", "0.0001", "-o", tmp_path / "n.h5", expect=1)
    assert "--max-var" in res.output and not (tmp_path / "n.h5").exists()
    assert not list(tmp_path.iterdir())


def test_window_larger_than_the_image_is_refused(demo, tmp_path):
    res = run_cli("negaug", "--src", demo, "--s", "301", "-o", tmp_path / "o", expect=1)
    assert "larger than" in res.output
    res = run_cli("negaug", "--src", demo, "--s", "4", "-o", tmp_path / "o", expect=1)
    assert "odd" in res.output


def test_applying_a_stage_twice_is_refused_before_writing(demo, tmp_path):
    bank, disp = tmp_path / "noise.h5", tmp_path / "disp"
    run_cli("sample-noise", "--src", demo, "-o", bank)
    run_cli("displace", "--src", demo, "--noise", bank, "--alpha", "0.1", "-o", disp)
    res = run_cli("displace", "--src", disp, "--noise", bank, "--alpha", "0.1", "-o", tmp_path / "again", expect=1)
    assert "would overwrite source images" in res.output and not (tmp_path / "again").exists()
    run_cli("negaug", "--src", disp, "-o", tmp_path / "neg")
    res = run_cli("negaug", "--src", tmp_path / "neg", "-o", tmp_path / "neg2", expect=1)
    assert "_t1_k1" in res.output and not (tmp_path / "neg2").exists()
    res = run_cli("negaug", "--src", disp, "--only", "negative", "-o", tmp_path / "n3", expect=2)
    assert "negative" in res.output


def test_sample_noise_refuses_unsafe_outputs(demo, tmp_path):
    before = tree_digest(demo)
    res = run_cli("sample-noise", "--src", demo, "-o", demo / "noise.h5", expect=1)
    assert "inside the source" in res.output and tree_digest(demo) == before
    res = run_cli("sample-noise", "--src", demo, "-o", tmp_path, expect=1)
    assert "is a folder" in res.output
    bank = tmp_path / "deeper" / "noise.h5"
    run_cli("sample-noise", "--src", demo, "-o", bank)
    res = run_cli("sample-noise", "--src", demo, "-o", bank, expect=1)
    assert "--force" in res.output
    run_cli("sample-noise", "--src", demo, "-o", bank, "--force")


def test_split_lists_with_crlf_bom_and_spaces_are_read(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    train = ids(src, "50_50", "train")
    for folder in ("images", "masks"):
        (src / folder / f"{train[0]}.png").rename(src / folder / f"a b {train[0]}.png")
    text = "\ufeff" + "\r\n".join([f"a b {train[0]}", *train[1:]])      # BOM, CRLF, no final newline
    (src / "50_50" / "train.txt").write_bytes(text.encode("utf-8"))
    run_cli("build", "--src", src, "--total", "40", "-o", tmp_path / "out")
    assert ids(tmp_path / "out", "50_50", "train")[0] == f"a b {train[0]}"


def test_duplicate_ids_and_zero_workers_get_one_clear_line(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    train = ids(src, "50_50", "train")
    (src / "50_50" / "train.txt").write_text("\n".join(train + train[:1]) + "\n")
    res = run_cli("build", "--src", src, "-o", tmp_path / "o", "--skip-invalid", expect=1)
    assert f"'{train[0]}'" in res.output and "listed 2 times" in res.output and "fix the split lists" in res.output
    res = run_cli("build", "--src", demo, "-o", tmp_path / "o", "-j", "0", expect=1)
    assert "0 workers" in res.output and "Traceback" not in res.output


def test_quiet_prints_nothing_and_images_without_targets_or_noise_still_count(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    first = ids(src, "50_50", "train")[0]
    mask = read(src / "masks" / f"{first}.png")
    from sirst_synth.store.imageio import encode_png
    (src / "masks" / f"{first}.png").write_bytes(encode_png(np.zeros_like(mask)))
    res = run_cli("-q", "build", "--src", src, "--total", "400", "--grid", "8", "-o", tmp_path / "o")
    assert res.output == ""
    rows = [r for r in manifest(tmp_path / "o") if r["source_id"] == first]
    assert {r["kind"] for r in rows} == {"original", "displaced"}     # no target: no negative


def test_grid_too_fine_for_the_smallest_image_is_refused_naming_it(demo, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(demo, src)
    from sirst_synth.store.imageio import encode_png
    tiny = np.arange(30, dtype=np.uint8).reshape(5, 6) * 7   # textured: rotations differ
    tiny_mask = np.zeros((5, 6), np.uint8)
    tiny_mask[2, 3] = 255
    (src / "images" / "tiny.png").write_bytes(encode_png(tiny))
    (src / "masks" / "tiny.png").write_bytes(encode_png(tiny_mask))
    with open(src / "50_50" / "train.txt", "a") as fh:
        fh.write("tiny\n")
    res = run_cli("sample-noise", "--src", src, "-o", tmp_path / "n.h5", expect=1)
    assert "'tiny' (6x5 pixels)" in res.output and "--grid <= 2" in res.output
    assert not (tmp_path / "n.h5").exists() and not list(tmp_path.glob(".n.h5*"))
    res = run_cli("build", "--src", src, "--total", "300", "-o", tmp_path / "o", expect=1)
    assert "'tiny'" in res.output and not (tmp_path / "o").exists()
    run_cli("sample-noise", "--src", src, "-o", tmp_path / "n.h5", "--grid", "2")
    with h5py.File(tmp_path / "n.h5") as f:
        assert f.attrs["images"] == 21
    run_cli("build", "--src", src, "--total", "300", "-o", tmp_path / "o", "--grid", "2", "--max-var", "1e6")
    kinds = {r["kind"] for r in manifest(tmp_path / "o") if r["source_id"] == "tiny"}
    assert kinds == {"original", "displaced", "negative"}


def test_data_commands_never_import_torch(demo, tmp_path):
    import subprocess
    import sys
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sirst_synth.cli import main\n"
        f"r = CliRunner().invoke(main, ['build', '--src', {str(demo)!r}, '--total', '30', '-o', {str(tmp_path / 'o')!r}, '-j', '1'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_channels_3_writes_generated_images_as_r_eq_g_eq_b_and_records_the_choice(demo, tmp_path):
    gray_out, rgb_out = tmp_path / "gray", tmp_path / "rgb"
    run_cli("build", "--src", demo, "--total", "40", "-o", gray_out, "-j", "1")
    run_cli("build", "--src", demo, "--total", "40", "-o", rgb_out, "-j", "1", "--channels", "3")
    rows = [r for r in manifest(rgb_out) if r["kind"] in ("displaced", "negative")]
    assert rows and {r["channels"] for r in rows} == {"3"}
    assert {r["channels"] for r in manifest(gray_out) if r["kind"] != "original"} == {"1"}
    for r in rows[:5]:
        rgb, gray = read(rgb_out / "images" / f"{r['id']}.png"), read(gray_out / "images" / f"{r['id']}.png")
        assert rgb.ndim == 3 and gray.ndim == 2
        assert all(np.array_equal(rgb[..., c], gray) for c in range(3))
    info = json.loads((rgb_out / "sirst-synth.json").read_text())
    assert info["parameters"]["channels"] == 3
    res = run_cli("build", "--src", demo, "--total", "40", "-o", rgb_out, "-j", "1", "--resume", expect=1)
    assert "channels was 3, now 1" in res.output
