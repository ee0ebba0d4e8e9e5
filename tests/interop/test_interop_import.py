"""``import FORMAT SRC``: synthetic raw layouts of every format, made small in tmp_path, and the
real SIRST release (must equal the converted copy in ../shared/datasets/SIRST)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sirst_synth.progress import silent
from sirst_synth.run.scan import scan
from sirst_synth.store.reader import open_dataset

from conftest import DATASETS, SIRST, need, run_cli, tree_digest
from support import ids, read

# -- making raw layouts -------------------------------------------------------------------------

def _image(seed: int, size=(24, 20), mode="L") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 200, (size[1], size[0]), dtype=np.uint8)
    im = Image.fromarray(arr, "L")
    return im.convert(mode) if mode != "L" else im


def _mask(size=(24, 20), boxes=((3, 4, 2, 2),), values=(255,)) -> Image.Image:
    arr = np.zeros((size[1], size[0]), np.uint8)
    for (x, y, w, h), v in zip(boxes, values * len(boxes)):
        arr[y:y + h, x:x + w] = v
    return Image.fromarray(arr, "L")


def _save(im: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def _lines(path: Path, ids_: list[str], final_newline: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(ids_) + ("\n" if final_newline else ""))


def _manifest(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "import-manifest.csv", newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def _import(fmt: str, src: Path, out: Path, *extra: str, expect: int = 0):
    before = tree_digest(src)
    result = run_cli("import", fmt, src, "-o", out, *extra, expect=expect)
    assert tree_digest(src) == before, "import changed its source"
    return result


def _build_ready(out: Path, split: str) -> None:
    """The output opens as a source of build, and its scan finds no problem."""
    ds = open_dataset(out, split)
    result = scan(ds, ("train", "test"), 1, silent)
    assert not result.problems, result.problems


# -- sirst --------------------------------------------------------------------------------------

def make_sirst(root: Path) -> Path:
    for i in range(1, 7):
        _save(_image(i, mode="RGB" if i % 2 else "L"), root / "images" / f"Misc_{i}.png")
        _save(_mask(boxes=((i, 2, 2, 3),)), root / "masks" / f"Misc_{i}_pixels0.png")
        (root / "masks" / f"Misc_{i}.xml").write_text("<annotation/>")
    _lines(root / "idx_6" / "trainval.txt", ["Misc_1", "Misc_2", "Misc_3", "Misc_4"], final_newline=False)
    _lines(root / "idx_6" / "test.txt", ["Misc_5", "Misc_6"], final_newline=False)
    _lines(root / "idx_6" / "train.txt", ["Misc_1", "Misc_2"])
    _lines(root / "idx_4" / "trainval.txt", ["Misc_1", "Misc_2"])
    _lines(root / "idx_4" / "test.txt", ["Misc_3"])
    return root


def test_sirst_layout_copies_bytes_and_keeps_every_split(tmp_path):
    src, out = make_sirst(tmp_path / "release"), tmp_path / "out"
    _import("sirst", src, out)
    assert ids(out, "idx_6", "train") == ["Misc_1", "Misc_2", "Misc_3", "Misc_4"]
    assert ids(out, "idx_6", "test") == ["Misc_5", "Misc_6"]
    assert ids(out, "idx_4", "train") == ["Misc_1", "Misc_2"] and ids(out, "idx_4", "test") == ["Misc_3"]
    for i in range(1, 7):
        assert (out / "images" / f"Misc_{i}.png").read_bytes() == (src / "images" / f"Misc_{i}.png").read_bytes()
        assert (out / "masks" / f"Misc_{i}.png").read_bytes() == (src / "masks" / f"Misc_{i}_pixels0.png").read_bytes()
    rows = _manifest(out)
    assert rows["Misc_1"]["mask_source"] == "masks/Misc_1_pixels0.png" and rows["Misc_1"]["image_action"] == "copied"
    assert rows["Misc_3"]["splits"] == "idx_4:test;idx_6:train"
    record = json.loads((out / "import.json").read_text())
    assert record["splits"]["idx_6"]["train"]["source"] == "idx_6/trainval.txt"
    assert sorted(p.name for p in out.iterdir()) == ["idx_4", "idx_6", "images", "import-manifest.csv", "import.json", "masks"]
    _build_ready(out, "idx_6")


def test_import_is_deterministic(tmp_path):
    src = make_sirst(tmp_path / "release")
    _import("sirst", src, tmp_path / "a")
    _import("sirst", src, tmp_path / "b")
    record_a = json.loads((tmp_path / "a" / "import.json").read_text())
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b") and record_a["images"] == 6


# -- sirst-v2: target-free images without masks ------------------------------------------------

def test_sirst_v2_gives_target_free_images_an_empty_mask(tmp_path):
    src, out = tmp_path / "v2", tmp_path / "out"
    for i, id_ in enumerate(["Misc_1", "S1_2", "TH_3", "iraytek-4"]):
        _save(_image(i, size=(30, 16)), src / "mixed" / f"{id_}.png")
        if i < 2:
            _save(_mask(size=(30, 16)), src / "annotations" / "masks" / f"{id_}_pixels0.png")
    _lines(src / "splits" / "trainval_full.txt", ["Misc_1", "TH_3"])
    _lines(src / "splits" / "test_full.txt", ["S1_2", "iraytek-4"])
    _lines(src / "splits" / "mini_trainval.txt", ["Misc_1"])
    _lines(src / "splits" / "mini_test.txt", ["S1_2"])
    _lines(src / "splits" / "v2background.txt", ["TH_3", "iraytek-4"])
    result = _import("sirst-v2", src, out)
    assert "2 image(s) have no mask in the release and got an empty mask: TH_3, iraytek-4" in result.output
    assert ids(out, "full", "train") == ["Misc_1", "TH_3"] and ids(out, "mini", "test") == ["S1_2"]
    empty = read(out / "masks" / "TH_3.png")
    assert empty.shape == (16, 30) and not empty.any()
    assert _manifest(out)["TH_3"]["mask_action"].startswith("empty")
    _build_ready(out, "full")


# -- irstd-1k: soft masks ----------------------------------------------------------------------

def make_irstd(root: Path) -> Path:
    _save(_image(1), root / "IRSTD1k_Img" / "XDU0.png")
    _save(_mask(boxes=((2, 2, 3, 3), (10, 10, 2, 2)), values=(255, 100)), root / "IRSTD1k_Label" / "XDU0.png")
    soft = np.zeros((20, 24), np.uint8)
    soft[5:8, 5:8] = [[30, 140, 30], [140, 250, 140], [30, 140, 30]]
    _save(_image(2), root / "IRSTD1k_Img" / "XDU1.png")
    _save(Image.fromarray(soft, "L"), root / "IRSTD1k_Label" / "XDU1.png")
    _save(_image(3), root / "IRSTD1k_Img" / "XDU2.png")
    _save(_mask(values=(1,)), root / "IRSTD1k_Label" / "XDU2.png")  # a 0/1 label mask
    _save(_image(4), root / "IRSTD1k_Img" / "XDU3.png")
    _save(_mask(), root / "IRSTD1k_Label" / "XDU3.png")
    _lines(root / "trainval.txt", ["XDU0", "XDU1", "XDU3"])
    _lines(root / "test.txt", ["XDU2"])
    return root


def test_irstd_1k_binarises_soft_masks_and_names_them(tmp_path):
    src, out = make_irstd(tmp_path / "IRSTD-1k"), tmp_path / "out"
    result = _import("irstd-1k", src, out)
    line = next(l for l in result.output.splitlines() if "not binary" in l)
    assert line.startswith("warning: 3 mask(s)") and "XDU0, XDU1, XDU2" in line and "XDU3" not in line
    assert "removed target pixels" in result.output and "XDU0" in result.output
    m0, m1, m2 = (read(out / "masks" / f"XDU{i}.png") for i in range(3))
    assert set(np.unique(m0)) == {0, 255} and m0[10:12, 10:12].sum() == 0  # 100 <= 127
    assert (m1 == 255).sum() == 5  # the 140s and the 250 of the cross are > 127
    assert set(np.unique(m2)) == {0, 255} and (m2 == 255).sum() == 4  # 0/1 scaled
    assert (out / "masks" / "XDU3.png").read_bytes() == (src / "IRSTD1k_Label" / "XDU3.png").read_bytes()
    assert ids(out, "released", "train") == ["XDU0", "XDU1", "XDU3"]
    rows = _manifest(out)
    assert rows["XDU1"]["mask_action"] == "binarised: value > 127 -> 255"
    assert rows["XDU2"]["mask_action"] == "0/1 mask scaled to 0/255"


def test_mask_threshold_option(tmp_path):
    src, out = make_irstd(tmp_path / "IRSTD-1k"), tmp_path / "out"
    _import("irstd-1k", src, out, "--mask-threshold", "20", "--split-name", "idx_1k")
    assert (read(out / "masks" / "XDU1.png") == 255).sum() == 9
    assert ids(out, "idx_1k", "test") == ["XDU2"]
    run_cli("import", "irstd-1k", src, "-o", tmp_path / "o2", "--mask-threshold", "255", expect=1)


# -- basicirstd: bmp files, ids with folder parts ----------------------------------------------

def test_basicirstd_bmp_and_folder_ids(tmp_path):
    src, out = tmp_path / "IRDST", tmp_path / "out"
    names = ["44/1(814)", "44/1(815)", "7/2(1)", "plain"]
    for i, id_ in enumerate(names):
        _save(_image(i, mode="RGB" if i == 0 else "L"), src / "images" / f"{id_}.bmp")
        _save(_mask(boxes=((i + 1, 1, 2, 2),)), src / "masks" / f"{id_}.bmp")
    _lines(src / "img_idx" / "train_IRDST-real.txt", names[:3])
    _lines(src / "img_idx" / "test_IRDST-real.txt", names[3:])
    _import("basicirstd", src, out)
    assert ids(out, "IRDST-real", "train") == ["44__1(814)", "44__1(815)", "7__2(1)"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["44__1(814).png", "44__1(815).png", "7__2(1).png", "plain.png"]
    for id_ in names:
        flat = id_.replace("/", "__")
        assert np.array_equal(read(out / "images" / f"{flat}.png"), read(src / "images" / f"{id_}.bmp"))
        assert np.array_equal(read(out / "masks" / f"{flat}.png") > 0, read(src / "masks" / f"{id_}.bmp") > 0)
    rows = _manifest(out)
    assert rows["44__1(814)"]["source_id"] == "44/1(814)" and rows["44__1(814)"]["image_source"] == "images/44/1(814).bmp"
    assert rows["44__1(814)"]["image_action"] == "re-encoded BMP (RGB) to PNG, lossless"
    assert json.loads((out / "import.json").read_text())["renamed_ids"]["7/2(1)"] == "7__2(1)"
    _build_ready(out, "IRDST-real")


@pytest.mark.parametrize("bad", ["../evil", "/etc/passwd", "a//b", "a/./b", "a\\b", "x\x00y", "C:/x"])
def test_path_traversal_ids_are_refused(tmp_path, bad):
    src, out = tmp_path / "ds", tmp_path / "out"
    _save(_image(0), src / "images" / "ok.png")
    _save(_mask(), src / "masks" / "ok.png")
    _lines(src / "img_idx" / "train_X.txt", ["ok"])
    _lines(src / "img_idx" / "test_X.txt", [bad])
    result = run_cli("import", "basicirstd", src, "-o", out, expect=1)
    assert result.output.count("error:") == 1 and repr(bad) in result.output and "test_X.txt" in result.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_colliding_flat_names_are_refused(tmp_path):
    src, out = tmp_path / "ds", tmp_path / "out"
    for id_ in ("a/b", "a__b"):
        _save(_image(0), src / "images" / f"{id_}.png")
        _save(_mask(), src / "masks" / f"{id_}.png")
    _lines(src / "train_X.txt", ["a/b"])
    _lines(src / "test_X.txt", ["a__b"])
    result = run_cli("import", "basicirstd", src, "-o", out, expect=1)
    assert "'a/b' and 'a__b' both map to the file name 'a__b'.png" in result.output and not out.exists()


# -- folders, dnanet -----------------------------------------------------------------------------

def test_folders_layout(tmp_path):
    src, out = tmp_path / "SIRST-folders", tmp_path / "out"
    for part, names in (("trainval", ["b", "a"]), ("test", ["c"])):
        for i, n in enumerate(names):
            _save(_image(i), src / part / "images" / f"{n}.png")
            _save(_mask(), src / part / "masks" / f"{n}.png")
    _import("folders", src, out)
    assert ids(out, "released", "train") == ["a", "b"] and ids(out, "released", "test") == ["c"]
    _build_ready(out, "released")


def test_folders_missing_mask_is_one_line(tmp_path):
    src, out = tmp_path / "f", tmp_path / "out"
    _save(_image(0), src / "train" / "images" / "a.png")
    _save(_mask(), src / "train" / "masks" / "a.png")
    _save(_image(1), src / "test" / "images" / "b.png")
    (src / "test" / "masks").mkdir(parents=True)
    result = run_cli("import", "folders", src, "-o", out, expect=1)
    assert result.output.strip().splitlines() == [f"error: test id 'b': mask not found in {src / 'test' / 'masks'}"]


def test_dnanet_copy_is_byte_identical(tmp_path, demo):
    out = tmp_path / "out"
    _import("dnanet", demo, out)
    for sub in ("images", "masks"):
        assert sorted(p.name for p in (out / sub).iterdir()) == sorted(p.name for p in (demo / sub).iterdir())
        for p in (demo / sub).iterdir():
            assert (out / sub / p.name).read_bytes() == p.read_bytes()
    assert ids(out, "50_50", "train") == ids(demo, "50_50", "train")


# -- sizes, bad files, the output folder -----------------------------------------------------------

def _mismatch_release(root: Path) -> Path:
    make_sirst(root)
    _save(_mask(size=(40, 30)), root / "masks" / "Misc_2_pixels0.png")
    return root


def test_size_mismatch_is_reported_and_kept_or_skipped(tmp_path):
    src = _mismatch_release(tmp_path / "r")
    result = _import("sirst", src, tmp_path / "keep")
    lines = [l for l in result.output.splitlines() if "Misc_2" in l]
    assert len(lines) == 1 and "differ in size" in lines[0] and "kept unchanged" in lines[0]
    assert read(tmp_path / "keep" / "masks" / "Misc_2.png").shape == (30, 40)  # never resized
    row = _manifest(tmp_path / "keep")["Misc_2"]
    assert (row["width"], row["height"], row["mask_width"], row["mask_height"]) == ("24", "20", "40", "30")
    _import("sirst", src, tmp_path / "skip", "--skip-mismatched")
    assert "Misc_2" not in ids(tmp_path / "skip", "idx_6", "train")
    assert not (tmp_path / "skip" / "images" / "Misc_2.png").exists()


def test_16_bit_image_is_one_line_and_nothing_is_written(tmp_path):
    src, out = make_sirst(tmp_path / "r"), tmp_path / "out"
    Image.fromarray(np.full((20, 24), 4000, np.uint16)).save(src / "images" / "Misc_4.png")
    result = run_cli("import", "sirst", src, "-o", out, expect=1)
    assert result.output.count("error:") == 1 and "Misc_4" in result.output and "16/32-bit" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_output_folder_rules(tmp_path):
    src, out = make_sirst(tmp_path / "r"), tmp_path / "out"
    run_cli("import", "sirst", src, "-o", src / "inside", expect=1)
    out.mkdir()
    (out / "keep.txt").write_text("x")
    for force in ((), ("--force",)):  # a folder of foreign files and no record of the tool: refused, even with --force
        result = run_cli("import", "sirst", src, "-o", out, *force, expect=1)
        assert result.output == (f"error: {out}: holds keep.txt, not written by sirst-synth; choose another -o "
                                 "(--force replaces only what sirst-synth wrote)\n")
    (out / "keep.txt").unlink()
    run_cli("import", "sirst", src, "-o", out)
    (out / "keep.txt").write_text("x")  # beside an import: --force replaces the import, keep.txt stays
    result = run_cli("import", "sirst", src, "-o", out, expect=1)
    assert "holds an earlier output of sirst-synth; use --force" in result.output
    run_cli("import", "sirst", src, "-o", out, "--force")
    assert (out / "keep.txt").read_text() == "x" and ids(out, "idx_6", "test") == ["Misc_5", "Misc_6"]
    run_cli("import", "sirst", src, "-o", tmp_path, "--force", expect=1)  # would swallow the source
    run_cli("import", "sirst", tmp_path / "nope", "-o", tmp_path / "o3", expect=1)


def test_wrong_format_is_a_short_report(tmp_path):
    src = make_sirst(tmp_path / "r")
    result = run_cli("import", "irstd-1k", src, "-o", tmp_path / "o", expect=1)
    assert result.output.count("error:") == 1 and "IRSTD1k_Img folder not found" in result.output


# -- the real SIRST release ----------------------------------------------------------------------

def test_sirst_release_import_equals_the_converted_sirst(tmp_path):
    release, converted = need(DATASETS / "SIRST-release"), need(SIRST)
    out = tmp_path / "SIRST"
    result = _import("sirst", release, out)
    assert [l for l in result.output.splitlines() if l.startswith("warning")] == [
        "warning: 1 mask(s) differ in size from their image, kept unchanged (build refuses them unless "
        "--skip-invalid): Misc_111"]
    for part in ("train", "test"):
        assert ids(out, "idx_427", part) == ids(converted, "idx_427", part)
    names = sorted(p.name for p in (converted / "images").iterdir())
    assert sorted(p.name for p in (out / "images").iterdir()) == names
    for name in names:
        assert (out / "images" / name).read_bytes() == (converted / "images" / name).read_bytes()
        assert np.array_equal(read(out / "masks" / name), read(converted / "masks" / name))
    assert ids(out, "idx_320", "train")  # the older split comes along
    from sirst_synth.store.fingerprint import split_fingerprint
    assert split_fingerprint(open_dataset(out, "idx_427")) == split_fingerprint(open_dataset(converted, "idx_427"))


def test_folders_upper_case_suffix_jpeg_and_duplicate_ids(tmp_path):
    src, out = tmp_path / "f", tmp_path / "out"
    _save(_image(0), src / "train" / "images" / "a.PNG")
    _save(_mask(), src / "train" / "masks" / "a.png")
    _save(_image(1), src / "test" / "images" / "c.jpg")
    _save(_mask(), src / "test" / "masks" / "c.bmp")
    _import("folders", src, out)
    assert _manifest(out)["c"]["image_action"] == "re-encoded JPEG (L) to PNG, lossless"
    assert np.array_equal(read(out / "images" / "c.png"), read(src / "test" / "images" / "c.jpg"))
    assert _manifest(out)["c"]["mask_action"] == "re-encoded BMP (L) to gray PNG"
    _save(_image(2), src / "test" / "images" / "c.png")
    result = run_cli("import", "folders", src, "-o", tmp_path / "o2", expect=1)
    assert "several files for id 'c'" in result.output
