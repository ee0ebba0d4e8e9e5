"""sirst_synth.run.scan: every problem of a source is found before anything is written."""
from __future__ import annotations

import numpy as np

from sirst_synth.progress import silent
from sirst_synth.run.scan import SourceRecord, check_grid, odd_mask_warnings, scan
from sirst_synth.store import imageio
from sirst_synth.store.dataset import Dataset

SPLIT = "50_50"


def write_pair(root, id_, size=(32, 32), mask_size=None, mask_value=255):
    h, w = size
    image = np.full((h, w), 60, np.uint8)
    image[10:13, 10:13] = 220
    mh, mw = mask_size or size
    mask = np.zeros((mh, mw), np.uint8)
    mask[10:13, 10:13] = mask_value
    (root / "images" / f"{id_}.png").write_bytes(imageio.encode_png(image))
    (root / "masks" / f"{id_}.png").write_bytes(imageio.encode_png(mask))


def make_source(root, train=("a", "b", "c"), test=("d",)):
    for sub in ("images", "masks", SPLIT):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for id_ in {*train, *test}:
        if "/" not in id_:
            write_pair(root, id_)
    (root / SPLIT / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (root / SPLIT / "test.txt").write_text("".join(f"{i}\n" for i in test))
    return Dataset(root)


def problems(ds):
    return [str(p) for p in scan(ds, ("train", "test"), 1, silent).problems]


def test_a_clean_source_has_no_problem_and_records_in_split_order(tmp_path):
    result = scan(make_source(tmp_path), ("train", "test"), 1, silent)
    assert result.problems == []
    assert [r.id for r in result.records["train"]] == ["a", "b", "c"]
    assert [r.id for r in result.records["test"]] == ["d"]
    assert (result.records["train"][0].height, result.records["train"][0].width, result.records["train"][0].targets) == (32, 32, 1)


def test_a_missing_image_is_a_problem_naming_the_id(tmp_path):
    ds = make_source(tmp_path)
    (tmp_path / "images" / "b.png").unlink()
    (line,) = problems(ds)
    assert line.startswith("train id 'b': ") and "file not found" in line


def test_an_undecodable_image_is_a_problem(tmp_path):
    ds = make_source(tmp_path)
    (tmp_path / "images" / "d.png").write_bytes(b"not a png at all")
    (line,) = problems(ds)
    assert line.startswith("test id 'd': ") and "cannot decode" in line


def test_a_mask_of_another_size_is_a_problem_giving_both_sizes(tmp_path):
    ds = make_source(tmp_path)
    write_pair(tmp_path, "a", size=(32, 40), mask_size=(32, 32))
    assert problems(ds) == ["train id 'a': mask is 32x32 but image is 40x32 (width x height)"]


def test_an_id_listed_twice_is_a_problem(tmp_path):
    ds = make_source(tmp_path, train=("a", "b", "a"))
    (line,) = problems(ds)
    assert line.startswith("train id 'a': listed 2 times in ") and "train.txt" in line


def test_an_id_in_both_train_and_test_is_leakage(tmp_path):
    ds = make_source(tmp_path, train=("a", "b"), test=("b",))
    assert problems(ds) == ["train id 'b': also listed in the test split (test leakage)"]


def test_leakage_is_found_when_only_train_is_read(tmp_path):
    ds = make_source(tmp_path, train=("a", "b"), test=("b",))
    result = scan(ds, ("train",), 1, silent)
    assert [str(p) for p in result.problems] == ["train id 'b': also listed in the test split (test leakage)"]


def test_an_empty_list_is_a_problem_naming_the_file(tmp_path):
    ds = make_source(tmp_path, test=())
    (line,) = problems(ds)
    assert line.endswith("test.txt lists no id")


def test_an_id_leaving_the_dataset_is_a_problem(tmp_path):
    ds = make_source(tmp_path, train=("a", "../a"))
    from sirst_synth.store.layout import id_problem
    assert problems(ds) == [f"train id '../a': {id_problem('../a')}"]


def test_the_fingerprint_is_the_same_when_nothing_changes(tmp_path):
    ds = make_source(tmp_path)
    assert scan(ds, ("train", "test"), 1, silent).fingerprint() == scan(ds, ("train", "test"), 1, silent).fingerprint()


def test_the_fingerprint_changes_when_a_files_bytes_change(tmp_path):
    ds = make_source(tmp_path)
    before = scan(ds, ("train", "test"), 1, silent).fingerprint()
    image = np.full((32, 32), 61, np.uint8)
    (tmp_path / "images" / "d.png").write_bytes(imageio.encode_png(image))
    assert scan(ds, ("train", "test"), 1, silent).fingerprint() != before


def test_a_mask_with_odd_values_gives_a_warning_and_still_counts_its_targets(tmp_path):
    ds = make_source(tmp_path)
    write_pair(tmp_path, "b", mask_value=128)
    result = scan(ds, ("train", "test"), 1, silent)
    assert result.problems == []
    assert result.records["train"][1].targets == 1
    assert odd_mask_warnings(result) == [
        "train id 'b': mask has values other than 0 and 255 (128); pixels > 0 are used as targets"]


def test_odd_mask_warnings_show_the_first_few_then_a_count(tmp_path):
    ids = [f"i{n}" for n in range(7)]
    ds = make_source(tmp_path, train=ids, test=("d",))
    for id_ in ids:
        write_pair(tmp_path, id_, mask_value=7)
    lines = odd_mask_warnings(scan(ds, ("train", "test"), 1, silent), shown=5)
    assert len(lines) == 6
    assert lines[-1] == "... and 2 more masks with values other than 0 and 255"


def record(id_, h, w):
    return SourceRecord(id_, "train", h, w, 1, 1, "0" * 64, "0" * 64)


def test_check_grid_accepts_a_grid_leaving_2x2_regions():
    assert check_grid([record("a", 32, 32), record("b", 16, 20)], 8) is None


def test_check_grid_names_the_smallest_image_and_the_largest_usable_grid():
    message = check_grid([record("big", 64, 64), record("small", 12, 20)], 8)
    assert message is not None
    assert message.startswith("--grid 8 cuts train id 'small' (20x12 pixels) into regions of ")
    assert message.endswith("regions need at least 2x2 pixels: use --grid <= 6")


def test_check_grid_gives_region_sizes_as_width_x_height_like_the_image():
    message = check_grid([record("small", 12, 20)], 8)  # 12 high, 20 wide: regions 2 wide, 1 high
    assert message is not None and "(20x12 pixels) into regions of 2x1 pixels" in message


def test_scan_with_a_bank_samples_only_train_images(tmp_path):
    from sirst_synth.plan.params import NoiseParams
    from sirst_synth.store.noisebank import NoiseBank, NoiseBankWriter

    ds = make_source(tmp_path / "src")
    rng = np.random.default_rng(0)
    for id_ in ("a", "b", "c", "d"):
        image = (60 + rng.integers(0, 5, (32, 32))).astype(np.uint8)
        (tmp_path / "src" / "images" / f"{id_}.png").write_bytes(imageio.encode_png(image))
    writer = NoiseBankWriter(tmp_path / "bank.h5", {})
    scan(ds, ("train", "test"), 1, silent, NoiseParams(grid=4), writer)
    writer.close()
    with NoiseBank(tmp_path / "bank.h5") as bank:
        assert sorted(set(bank.source_id)) == ["a", "b", "c"]
        assert bank.attrs["images"] == 3
