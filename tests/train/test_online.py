"""``train --synth online``: the items a run draws from, the views synthesised on the device (equal
to the numpy transforms), the command (docs/transforms.md)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sirst_synth.cli.train import train_command
from sirst_synth.method.choices import ROTATIONS
from sirst_synth.method.gray import rounded_gray
from sirst_synth.plan.units import round_order
from sirst_synth.store.dataset import Dataset
from sirst_synth.store.noisebank import NoiseBankWriter
from sirst_synth.train.config import TrainConfig
from sirst_synth.train.data import Schedule, batch_schedule
from sirst_synth.train.online import DISPLACED, ORIGINAL, ROTATED, OnlineData, online_plan, target_counts
from sirst_synth.transforms import Bank, NoiseDisplace, TargetRotate
from sirst_synth.transforms.core import PatchDraw, Rotation

from train_fixtures import blob_dataset

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------- the plan


def test_the_items_are_the_originals_then_the_build_units_in_plan_order() -> None:
    ids, targets = ["a", "b", "c"], [1, 0, 2]
    plan = online_plan(ids, targets, seed=0, total=14)
    assert plan.size == 14
    assert plan.members[:3] == [[0], [1], [2]] and plan.kind[:3].tolist() == [ORIGINAL] * 3
    order = round_order(ids, 0, 0)
    first = ids.index(order[0])
    unit = plan.members[3]
    assert plan.base[unit].tolist() == [first] * (1 + 3 * targets[first])
    assert plan.kind[unit].tolist() == [DISPLACED] + [ROTATED] * 3 * targets[first]
    rotated = unit[1:]
    assert list(zip(plan.target[rotated].tolist(), plan.turn[rotated].tolist())) == [
        (t, j) for t in range(targets[first]) for j in range(len(ROTATIONS))]
    assert sum(len(m) for m in plan.members) == 14  # the last unit is cut to fit
    assert online_plan(ids, targets, 0, total=14, groups=False).members == [[m] for m in range(14)]


def test_a_default_pass_is_the_default_build_size(nudt: Path) -> None:
    ds = Dataset(nudt)
    ids = ds.ids("train")
    plan = online_plan(ids, target_counts(ds, ids), seed=0)
    counts = np.bincount(plan.kind, minlength=3).tolist()
    assert plan.size == 5562 and counts[ORIGINAL] == 663
    assert counts[ROTATED] > 3900 and counts[DISPLACED] > 900  # the build: 959 displaced, 3940 negatives
    assert all(len(m) <= 13 for m in plan.members)  # a displaced image and its rotations: at most 1 + 3 x 4


# ------------------------------------------------------------------------------------------- the views


@pytest.fixture(scope="module")
def online(nudt: Path, nudt_noise: Path) -> tuple[Dataset, list[str], Bank]:
    ds = Dataset(nudt)
    return ds, ds.ids("train")[:40], Bank.load(nudt_noise)


def online_data(online, fit: str, total: int = 160, crop: int = 64) -> tuple[OnlineData, Schedule]:
    ds, ids, bank = online
    config = TrainConfig(data=str(ds.root), out="unused", synth="online", fit=fit, crop=crop)
    plan = online_plan(ids, target_counts(ds, ids), seed=0, total=total)
    data = OnlineData.load(config, ds, ids, bank, plan, torch.device("cpu"))
    return data, Schedule(*batch_schedule(plan.members, 24, 0, 4), 0)


@pytest.mark.parametrize("fit", ["resize", "tile"])
def test_views_on_the_device_are_the_numpy_transforms(online, fit: str) -> None:
    ds, ids, bank = online
    data, schedule = online_data(online, fit)
    displace = NoiseDisplace(bank, fit=fit)
    differ = pixels = rotated = 0
    for step in range(schedule.steps):
        index, slot = torch.from_numpy(schedule.index[step]), torch.from_numpy(schedule.slot[step])
        views = data.views(index, slot, data.generator(step))
        for v in range(len(index)):
            id_ = ids[int(views.base[v])]
            image, mask = rounded_gray(ds.read_image(id_)), (ds.read_mask(id_) > 0).astype(np.uint8)
            patch = int(views.patch[v])
            if patch >= 0:
                assert bank.source_id[patch] != id_  # never a patch of the image itself
                image = displace.apply(image, PatchDraw(patch, bank.source_id[patch], 0, 0))
            k = int(views.k[v])
            if k:
                turn = Rotation(0, 0, 0, int(views.y0[v]), int(views.x0[v]), 3, k)
                image, mask = TargetRotate.apply(image, mask, [turn])
                rotated += 1
            difference = np.abs(image.astype(int) - views.images[v].numpy().astype(int))
            assert difference.max() <= 1, id_
            differ += int((difference > 0).sum())
            pixels += image.size
            assert np.array_equal(mask, views.masks[v].numpy())
        # a group's views share one displaced image: the same patch
        for s in slot.unique().tolist():
            assert len(set(views.patch[slot == s].tolist())) == 1
    assert rotated > 20
    assert differ <= 0.001 * pixels
    if fit == "tile":
        assert differ == 0


def test_a_rotated_view_turns_by_a_rotation_that_changes_it(online) -> None:
    data, schedule = online_data(online, "resize")
    items = data.plan
    index, slot = torch.from_numpy(schedule.index[0]), torch.from_numpy(schedule.slot[0])
    views = data.views(index, slot, data.generator(0))
    kinds = items.kind[schedule.index[0]]
    assert (views.k[torch.from_numpy(kinds != ROTATED)] == 0).all()
    for v in np.flatnonzero(kinds == ROTATED).tolist():
        y0, x0, k = int(views.y0[v]), int(views.x0[v]), int(views.k[v])
        window = views.images[v, y0:y0 + 3, x0:x0 + 3]
        if k:
            assert not torch.equal(torch.rot90(window, -k), window)


def test_a_resumed_run_draws_what_the_uninterrupted_run_drew(online) -> None:
    data, schedule = online_data(online, "resize")
    whole = list(data.batches(schedule, 64))
    resumed = list(data.batches(schedule, 64, start=2))
    assert len(whole) == 4 and len(resumed) == 2
    for a, b in zip(whole[2:], resumed):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert whole[0][0].shape == (24, 1, 64, 64) and whole[0][0].dtype == torch.float32


# ------------------------------------------------------------------------------------------ the command


def test_train_synth_online_smoke_on_nudt(nudt: Path, nudt_noise: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", str(nudt), "--synth", "online", "--noise", str(nudt_noise), "--smoke", "--steps", "6",
            "--eval-images", "4", "--threads", "1", "-o", str(out)]
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 0, result.output
    assert "online synthesis: 16578 noise patches" in result.output and "5562 items a pass" in result.output
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["loader"] == "online" and summary["steps"] == 6 and summary["config"]["synth"] == "online"
    assert summary["config"]["noise"] == str(nudt_noise)
    with open(out / "log.csv", newline="") as fh:
        assert [row["step"] for row in csv.DictReader(fh)][-1] == "6"
    changed = CliRunner().invoke(train_command, ["--resume", "--fit", "tile", "-o", str(out)])
    assert changed.exit_code == 1 and "--fit tile differs" in changed.output


def leaky_bank(path: Path, source_id: str) -> Path:
    from sirst_synth.method.noise import NoiseRegion

    writer = NoiseBankWriter(path, {"grid": 8})
    writer.add(source_id, [NoiseRegion(0, 0, (0, 0, 4, 4), 1.0, 10.0)], [np.ones((4, 4), np.float32)])
    writer.close()
    return path


def test_train_synth_online_errors_are_one_line(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 8)
    bank = leaky_bank(tmp_path / "ok.h5", "im000")
    built = blob_dataset(tmp_path / "built", 8)
    (built / "manifest.csv").write_text("id,split,kind,group\nim000,train,original,im000\nim001,train,displaced,im001\n")
    cases = [
        (["--data", str(data), "--synth", "online"], "--synth online needs --noise"),
        (["--data", str(data), "--noise", str(bank)], "--noise is for --synth online"),
        (["--data", str(data), "--synth", "online", "--noise", str(bank), "--loader", "stream"], "needs the device loader"),
        (["--data", str(data), "--synth", "online", "--noise", str(bank), "--s", "4"], "s must be odd"),
        (["--data", str(data), "--synth", "online", "--noise", str(leaky_bank(tmp_path / "leak.h5", "im007"))],
         "--noise: .*1 test image\\(s\\) \\('im007'\\)"),
        (["--data", str(built), "--synth", "online", "--noise", str(bank)], "a built dataset \\(1 generated images\\)"),
    ]
    for i, (args, message) in enumerate(cases):
        result = CliRunner().invoke(train_command, [*args, "--smoke", "-o", str(tmp_path / f"run{i}")])
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" not in result.output
        import re

        assert re.search(message, result.output), (message, result.output)
        assert len([line for line in result.output.splitlines() if line.startswith("error")]) == 1
