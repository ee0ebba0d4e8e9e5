"""The numpy transforms (docs/transforms.md): the build's draw rules, its method functions, records that replay."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sirst_synth.errors import TransformError
from sirst_synth.method.displace import displace
from sirst_synth.method.gray import float_gray
from sirst_synth.method.targets import find_targets
from sirst_synth.store.noisebank import NoiseBankWriter
from sirst_synth.transforms import Bank, NoiseDisplace, TargetRotate, apply_record
from sirst_synth.transforms.core import PatchDraw, Rotation, targets_of


def tiny_bank(sources: list[str], shape: tuple[int, int] = (4, 4), seed: int = 0) -> Bank:
    """A bank of one patch per entry of ``sources`` (grid cell (0, i)), random gray values."""
    rng = np.random.default_rng(seed)
    h, w = shape
    pixels = rng.integers(0, 256, len(sources) * h * w).astype(np.float32)
    offset = np.arange(len(sources)) * h * w
    return Bank(pixels, offset, np.tile([h, w], (len(sources), 1)), sources,
                np.stack([np.zeros(len(sources)), np.arange(len(sources))], 1), name="tiny")


def scene(shape: tuple[int, int] = (32, 40), seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A gray image with two asymmetric 2x2 targets (one at the right border) and its 0/255 mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(20, 120, shape).astype(np.uint8)
    mask = np.zeros(shape, np.uint8)
    for y, x in ((8, 10), (20, shape[1] - 2)):
        image[y:y + 2, x:x + 2] = [[250, 200], [180, 160]]
        mask[y:y + 2, x:x + 2] = 255
    return image, mask


# ------------------------------------------------------------------------------------------- imports


def test_the_numpy_transforms_import_without_torch_or_albumentations() -> None:
    code = ("import sys\n"
            "sys.modules['torch'] = None; sys.modules['albumentations'] = None  # as if not installed\n"
            "from sirst_synth.transforms import NoiseDisplace, TargetRotate\n"
            "import numpy as np\n"
            "image = np.zeros((8, 8), np.uint8); mask = image.copy(); mask[3:5, 3:5] = 1; image[3, 3] = 9\n"
            "out = TargetRotate()(rng=np.random.default_rng(0), image=image, mask=mask)\n"
            "print(out['record']['kind'], 'torch' in sys.modules and sys.modules['torch'] is not None)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["negative", "False"]


def test_the_adapters_import_with_their_extra() -> None:
    code = ("import sirst_synth.transforms.albumentations as a, sirst_synth.transforms.torch as t\n"
            "print(a.NoiseDisplace.__mro__[1].__name__, t.TargetRotate.__mro__[1].__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["DualTransform", "Module"]


# ----------------------------------------------------------------------------------- NoiseDisplace


def test_noise_is_never_drawn_from_the_image_itself() -> None:
    bank = tiny_bank(["a", "a", "b", "c", "c", "c"])
    t = NoiseDisplace(bank)
    drawn = {t.draw(np.random.default_rng(seed), "c").source_id for seed in range(200)}
    assert drawn == {"a", "b"}
    drawn = {t.draw(np.random.default_rng(seed), "z").index for seed in range(300)}  # not in the bank: any patch
    assert drawn == set(range(6))


def test_a_bank_of_the_image_alone_is_drawn_from() -> None:
    t = NoiseDisplace(tiny_bank(["a", "a"]))
    assert {t.draw(np.random.default_rng(s), "a").index for s in range(50)} == {0, 1}


def test_displacement_is_the_method_function_and_the_mask_is_unchanged() -> None:
    bank = tiny_bank(["x", "y"])
    image, mask = scene()
    out = NoiseDisplace(bank, alpha=0.25, fit="tile")(rng=np.random.default_rng(3), image=image, mask=mask,
                                                      image_id="x")
    assert np.array_equal(out["image"], displace(image, bank.patch(1), 0.25, "tile"))
    assert out["mask"] is mask
    assert out["record"] == {"kind": "displaced", "source_id": "x", "noise_source_id": "y", "noise_row": "0",
                             "noise_col": "1", "noise_index": "1", "alpha": "0.25", "fit": "tile"}


def test_equal_channels_keep_their_layout() -> None:
    bank = tiny_bank(["x", "y"])
    image, mask = scene()
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    gray = NoiseDisplace(bank)(rng=np.random.default_rng(0), image=image, mask=mask, image_id="x")["image"]
    out = NoiseDisplace(bank)(rng=np.random.default_rng(0), image=rgb, mask=mask, image_id="x")["image"]
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert all(np.array_equal(out[..., c], gray) for c in range(3))


def test_a_colour_image_is_displaced_on_its_gray_as_the_build_does() -> None:
    bank = tiny_bank(["x", "y"])
    image, mask = scene()
    colour = np.dstack([image, image // 2, 255 - image])
    out = NoiseDisplace(bank, fit="tile")(rng=np.random.default_rng(3), image=colour, mask=mask, image_id="x")
    expected = displace(float_gray(colour), bank.patch(1), 0.1, "tile")  # the 601 gray in float, rounded once
    assert out["image"].shape == colour.shape and all(np.array_equal(out["image"][..., c], expected) for c in range(3))
    again, _ = apply_record(out["record"], colour, mask, bank=bank)
    assert np.array_equal(again, out["image"])


def test_p_decides_first_and_p_1_draws_as_the_build() -> None:
    bank = tiny_bank(["a", "b", "c"])
    image, mask = scene()
    never = NoiseDisplace(bank, p=0.0)(rng=np.random.default_rng(0), image=image, mask=mask, image_id="a")
    assert never["image"] is image and never["record"] == {}
    applied = [NoiseDisplace(bank, p=0.5).draw(np.random.default_rng(s), "a") is not None for s in range(400)]
    assert 150 < sum(applied) < 250
    # p = 1 makes no coin draw: the patch is the first integer the generator gives
    assert NoiseDisplace(bank).draw(np.random.default_rng(7), "a").index == 1 + np.random.default_rng(7).integers(2)


def test_excluded_patches_are_not_drawn_again() -> None:
    t = NoiseDisplace(tiny_bank(["a", "b", "c", "d"]))
    assert {t.draw(np.random.default_rng(s), "a", exclude=[1, 3]).index for s in range(50)} == {2}
    with pytest.raises(TransformError, match="no patch left"):
        t.draw(np.random.default_rng(0), "a", exclude=[1, 2, 3])


# ------------------------------------------------------------------------------------ TargetRotate


def test_one_target_window_turns_in_image_and_mask_alike() -> None:
    image, mask = scene()
    out = TargetRotate(s=3)(rng=np.random.default_rng(0), image=image, mask=mask)
    record = out["record"]
    (r,) = [Rotation(int(record["target"]), int(record["cy"]), int(record["cx"]), 0, 0, 3, int(record["k"]))]
    changed = np.argwhere(out["image"] != image)
    assert len(changed) and changed.min(0).tolist() >= [r.cy - 1, min(r.cx - 1, 37)]
    assert (changed.max(0) - changed.min(0)).max() < 3  # inside one 3 x 3 window
    assert not np.array_equal(out["mask"], mask) or np.array_equal(out["image"], image)
    assert record["kind"] == "negative" and record["s"] == "3" and record["k"] in ("1", "2", "3")


def test_a_draw_that_would_leave_the_image_unchanged_is_never_made() -> None:
    image = np.full((9, 9), 50, np.uint8)
    mask = np.zeros((9, 9), np.uint8)
    mask[4, 4] = 1
    flat = TargetRotate()(rng=np.random.default_rng(0), image=image, mask=mask)
    assert flat["record"] == {} and np.array_equal(flat["image"], image)  # a uniform window: no rotation changes it
    image[3, 3] = image[5, 5] = 200  # a window that k = 2 maps onto itself
    ks = {TargetRotate().draw(np.random.default_rng(s), image, mask)[0].k for s in range(100)}
    assert ks == {1, 3}


def test_every_target_turns_its_own_window() -> None:
    image, mask = scene()
    out = TargetRotate(targets="every")(rng=np.random.default_rng(2), image=image, mask=mask)
    assert out["record"]["target"] == "1;2" and len(out["record"]["k"].split(";")) == 2
    again, again_mask = apply_record(out["record"], image, mask)
    assert np.array_equal(again, out["image"]) and np.array_equal(again_mask, out["mask"])


def test_windows_are_placed_as_the_build_places_them_at_a_border() -> None:
    image, mask = scene()
    draws = [TargetRotate().draw(np.random.default_rng(s), image, mask)[0] for s in range(40)]
    right = [d for d in draws if d.target == 2]
    assert right and all((d.y0, d.x0) == (d.cy - 1, 40 - 3) for d in right)


def test_targets_found_on_the_box_around_them_are_the_build_targets(nudt: Path) -> None:
    from sirst_synth.store.dataset import Dataset

    ds = Dataset(nudt)
    for id_ in ds.ids("train")[::7] + ds.ids("test")[::7]:
        mask = ds.read_mask(id_)
        assert targets_of(mask) == find_targets(mask), id_
    rng = np.random.default_rng(0)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(3, 50, 2))
        mask = (rng.random((h, w)) < rng.choice([0.02, 0.1, 0.4])).astype(np.uint8)
        assert targets_of(mask) == find_targets(mask)
    assert targets_of(np.zeros((5, 5), np.uint8)) == []


# ---------------------------------------------------------------------------------- both, records


def test_same_seed_same_sample_and_the_record_replays_it() -> None:
    bank = tiny_bank(["a", "b", "c"], shape=(5, 7))
    image, mask = scene()
    pipeline = [NoiseDisplace(bank), TargetRotate()]

    def sample(seed: int) -> dict:
        rng = np.random.default_rng(seed)
        data = {"image": image, "mask": mask, "image_id": "a"}
        for t in pipeline:
            data = t(rng=rng, **data)
        return data

    first, second, other = sample(5), sample(5), sample(6)
    assert np.array_equal(first["image"], second["image"]) and first["record"] == second["record"]
    assert not np.array_equal(first["image"], other["image"])
    replayed, replayed_mask = apply_record(first["record"], image, mask, bank=bank)
    assert np.array_equal(replayed, first["image"]) and np.array_equal(replayed_mask, first["mask"])
    assert first["record"]["kind"] == "negative" and first["record"]["noise_source_id"] in ("b", "c")


def test_the_input_is_not_changed() -> None:
    image, mask = scene()
    before = image.copy(), mask.copy()
    data = NoiseDisplace(tiny_bank(["a", "b"]))(rng=np.random.default_rng(0), image=image, mask=mask, image_id="a")
    TargetRotate(targets="every")(rng=np.random.default_rng(0), **data)
    TargetRotate()(rng=np.random.default_rng(0), image=image, mask=mask)
    assert np.array_equal(image, before[0]) and np.array_equal(mask, before[1])


def test_apply_takes_a_draw_as_data() -> None:
    bank = tiny_bank(["a", "b"])
    image, mask = scene()
    out = NoiseDisplace(bank, fit="tile").apply(image, PatchDraw(0, "a", 0, 0))
    assert np.array_equal(out, displace(image, bank.patch(0), 0.1, "tile"))
    t = find_targets(mask)[0]
    rotated, rotated_mask = TargetRotate.apply(image, mask, [Rotation(t.label, t.cy, t.cx, t.cy - 1, t.cx - 1, 3, 2)])
    assert np.array_equal(rotated[t.cy - 1:t.cy + 2, t.cx - 1:t.cx + 2], np.rot90(image[t.cy - 1:t.cy + 2, t.cx - 1:t.cx + 2], 2))


# ------------------------------------------------------------------------------------------ errors


def write_bank(path: Path, source: Path, source_id: str) -> Path:
    writer = NoiseBankWriter(path, {"source": str(source), "split": "50_50", "grid": 8})
    from sirst_synth.method.noise import NoiseRegion

    writer.add(source_id, [NoiseRegion(0, 0, (0, 0, 4, 4), 1.0, 10.0)], [np.ones((4, 4), np.float32)])
    writer.close()
    return path


def test_a_bank_from_a_test_image_is_refused(tmp_path: Path, nudt: Path) -> None:
    test_id = (nudt / "50_50" / "test.txt").read_text().split()[0]
    path = write_bank(tmp_path / "leak.h5", nudt, test_id)
    with pytest.raises(TransformError, match=f"1 test image.*'{test_id}'.*train images only") as exc:
        NoiseDisplace(path)  # the bank records its source: its test list is read
    assert "\n" not in str(exc.value)
    with pytest.raises(TransformError, match="test image"):
        NoiseDisplace(tiny_bank(["a", "b"]), test_ids=["b"])
    NoiseDisplace(tiny_bank(["a", "b"]), test_ids=["c"])


@pytest.mark.parametrize("call, message", [
    (lambda: TargetRotate(s=5)(rng=np.random.default_rng(0), image=np.zeros((4, 9), np.uint8),
                               mask=np.zeros((4, 9), np.uint8)), "s=5 is larger than the 4x9 image"),
    (lambda: TargetRotate()(rng=np.random.default_rng(0), image=np.zeros((8, 8), np.uint8),
                            mask=np.zeros((8, 9), np.uint8)), "mask: 8x9 differs from the image's 8x8"),
    (lambda: NoiseDisplace(tiny_bank(["a"]))(rng=np.random.default_rng(0), image=np.zeros((8, 8), np.uint8),
                                             mask=np.zeros((7, 8), np.uint8), image_id="a"), "mask: 7x8 differs"),
    (lambda: NoiseDisplace(tiny_bank(["a"]))(rng=np.random.default_rng(0), image=np.zeros((8, 8), np.float32),
                                             mask=np.zeros((8, 8), np.uint8), image_id="a"), "uint8 pixels expected"),
    (lambda: NoiseDisplace(tiny_bank(["a"]))(rng=np.random.default_rng(0), image=np.zeros((8, 8, 2), np.uint8),
                                             mask=np.zeros((8, 8), np.uint8), image_id="a"), "got shape \\(8, 8, 2\\)"),
    (lambda: NoiseDisplace(tiny_bank(["a"]))(rng=np.random.default_rng(0), image=np.zeros((8, 8), np.uint8),
                                             mask=np.zeros((8, 8), np.uint8), image_id=""), "needs the image's id"),
    (lambda: NoiseDisplace(tiny_bank(["a"]), alpha=1.5), "alpha must be in \\[0, 1\\]"),
    (lambda: NoiseDisplace(tiny_bank(["a"]), fit="crop"), "fit must be one of resize, tile"),
    (lambda: TargetRotate(s=4), "s must be odd"),
    (lambda: TargetRotate(targets="all"), "targets must be one of one, every"),
    (lambda: TargetRotate(p=2), "p must be in"),
])
def test_bad_input_is_one_clear_error(call, message: str) -> None:
    with pytest.raises(TransformError, match=message) as exc:
        call()
    assert "\n" not in str(exc.value)
