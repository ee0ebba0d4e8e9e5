"""Draw for draw equal to the build: a manifest row replays to the build's pixels, and the transforms
draw the build's patches (docs/method.md sections 3-4, docs/transforms.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sirst_synth.errors import TransformError
from sirst_synth.method.negatives import changing_rotations, negatives, window_origin
from sirst_synth.method.targets import find_targets
from sirst_synth.plan.seeding import rng_for
from sirst_synth.store.reader import open_dataset
from sirst_synth.transforms import Bank, NoiseDisplace, TargetRotate, replay, replay_params
from sirst_synth.transforms.replay import record_rotations


@pytest.fixture(scope="module")
def build(nudt_build: Path):
    ds = open_dataset(nudt_build)
    return ds, ds.manifest(), open_dataset(Path(ds.info()["source"]["path"]))


def spread(rows: list[dict], n: int) -> list[dict]:
    return [rows[i] for i in np.linspace(0, len(rows) - 1, n).astype(int)]


def test_50_displaced_and_100_negative_rows_replay_to_the_build_pixels(build) -> None:
    built, rows, source = build
    params = replay_params(built.info())
    assert params == {"grid": 8, "fit": "resize"}
    displaced = spread([r for r in rows.values() if r["kind"] == "displaced"], 50)
    negative = spread([r for r in rows.values() if r["kind"] == "negative"], 100)
    assert {r["round"] for r in displaced} == {"0", "1"} and len({r["k"] for r in negative}) == 3
    for row in displaced + negative:
        image, mask = replay(row, source, **params)
        assert image.dtype == np.uint8 and image.ndim == 2
        assert np.array_equal(image, built.read_image(row["id"])), row["id"]
        assert np.array_equal(mask, built.read_mask(row["id"])), row["id"]


def test_an_original_row_replays_to_its_file(build) -> None:
    built, rows, source = build
    row = next(r for r in rows.values() if r["kind"] == "original")
    image, mask = replay(row, source)
    assert np.array_equal(image, built.read_image(row["id"])) and np.array_equal(mask, built.read_mask(row["id"]))


def test_noise_displace_draws_the_build_patch_of_every_round(build, nudt_noise: Path) -> None:
    """``rng_for(seed, "displace", r, id)`` with the patches of earlier rounds excluded: the build's draw."""
    _, rows, _ = build
    t = NoiseDisplace(nudt_noise)
    had: dict[str, list[int]] = {}
    displaced = sorted((r for r in rows.values() if r["kind"] == "displaced"), key=lambda r: int(r["round"]))
    for row in displaced:
        id_, round_ = row["source_id"], int(row["round"])
        draw = t.draw(rng_for(0, "displace", round_, id_), id_, exclude=had.get(id_, []))
        assert (draw.source_id, str(draw.row), str(draw.col)) == (row["noise_source_id"], row["noise_row"],
                                                                   row["noise_col"]), row["id"]
        had.setdefault(id_, []).append(draw.index)


def test_target_rotate_draws_the_build_rotations(build, nudt_noise: Path) -> None:
    """TargetRotate draws among the (target, k) whose rotation changes the displaced image: the
    build's negatives of it, but for a rotation equal to an earlier negative (two targets' windows
    overlapping), which the build drops and a single draw cannot repeat."""
    built, rows, source = build
    bank = Bank.load(nudt_noise)
    by_group: dict[str, set[tuple[int, int]]] = {}
    for r in rows.values():
        if r["kind"] == "negative":
            by_group.setdefault(r["group"], set()).add((int(r["target"]), int(r["k"])))
    complete = [r for r in rows.values() if r["kind"] == "displaced" and r["round"] == "0"]  # round 1 is cut
    for row in spread(complete, 20):
        image, mask = replay(row, source, bank=bank)
        targets = find_targets(mask)
        changing = set()
        for t in targets:
            y0, x0 = window_origin(t.cy, t.cx, 3, *image.shape)
            changing |= {(t.label, k) for k in changing_rotations(image[y0:y0 + 3, x0:x0 + 3])}
        built_negatives = {(n.target.label, n.k) for n in negatives(image, mask, targets, 3)}
        assert built_negatives == by_group.get(row["id"], set()) and built_negatives <= changing
        drawn = {(d.target, d.k) for s in range(80) for d in TargetRotate().draw(np.random.default_rng(s), image, mask)}
        assert drawn <= changing
        assert drawn == changing or len(changing) > 6  # 80 draws see every one of a few options


def test_a_bad_row_is_one_clear_error() -> None:
    with pytest.raises(TransformError, match="not a negative's fields"):
        record_rotations({"id": "x", "s": "3", "target": "1;2", "cy": "4", "cx": "4", "k": "1"}, 9, 9)
