"""The trainer: loss, group batching, crops, the loop (overfit, determinism, resume), the CLI."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sirst_synth.cli.train import train_command
from sirst_synth.plan.seeding import rng_for
from sirst_synth.store.reader import open_dataset
from sirst_synth.train import checkpoint
from sirst_synth.train.augment import View, apply_view, draw_view, pad_to_multiple
from sirst_synth.train.data import CropDataset, GroupBatchSampler, group_members
from sirst_synth.train.loop import CSV_COLUMNS, TrainConfig, train
from sirst_synth.train.loss import group_loss, soft_iou_per_sample

from train_fixtures import blob_dataset, blob_scene, write_dataset

torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and stall on a busy machine)


def tiny_config(data: Path, out: Path, **kw: object) -> TrainConfig:
    options = dict(data=str(data), out=str(out), epochs=2, batch_size=2, width=4, crop=32, steps_per_epoch=2)
    options.update(kw)
    return TrainConfig(**options)


def quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- loss


def test_soft_iou_with_smooth_1() -> None:
    logits = torch.zeros(2, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.zeros(2, 1, 2, 2)
    target[0, 0, 0, 0] = 1
    # sample 0: inter 0.5, union 2 + 1 - 0.5 = 2.5 -> 1 - 1.5 / 3.5; sample 1: 1 - 1 / 3
    assert soft_iou_per_sample(logits, target).tolist() == pytest.approx([4 / 7, 2 / 3])


def test_soft_iou_of_a_confident_right_answer_is_near_zero() -> None:
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:4, 2:4] = 1
    assert soft_iou_per_sample((target * 2 - 1) * 50, target).item() < 1e-6


def test_group_loss_sum_min_none() -> None:
    per_sample = torch.tensor([0.2, 0.4, 0.9])
    groups = torch.tensor([5, 5, 7])
    assert group_loss(per_sample, groups, "sum").item() == pytest.approx((0.6 + 0.9) / 2)
    assert group_loss(per_sample, groups, "min").item() == pytest.approx((0.2 + 0.9) / 2)
    assert group_loss(per_sample, groups, "none").item() == pytest.approx(0.5)


def test_min_loss_trains_only_the_best_view_of_a_group() -> None:
    per_sample = torch.tensor([0.4, 0.2, 0.9], requires_grad=True)
    group_loss(per_sample, torch.tensor([0, 0, 1]), "min").backward()
    assert per_sample.grad.tolist() == pytest.approx([0.0, 0.5, 0.5])


def test_without_groups_every_mode_is_plain_soft_iou() -> None:
    per_sample = torch.tensor([0.1, 0.3, 0.8])
    singletons = torch.arange(3)
    for mode in ("sum", "min", "none"):
        assert group_loss(per_sample, singletons, mode).item() == pytest.approx(0.4)


def test_unknown_group_loss_is_an_error() -> None:
    with pytest.raises(ValueError, match="neg-loss"):
        group_loss(torch.zeros(2), torch.zeros(2), "max")


# --------------------------------------------------------------------------- group batching


def test_group_members_from_the_manifest_groups() -> None:
    ids = ["a", "a_r0", "a_r0_t1_k1", "b", "b_r0"]
    groups = {"a": "a", "a_r0": "a_r0", "a_r0_t1_k1": "a_r0", "b_r0": "b_r0"}  # b is missing: own group
    assert group_members(ids, groups) == [[0], [1, 2], [3], [4]]
    assert group_members(ids, None) == [[0], [1], [2], [3], [4]]


def test_batches_hold_whole_groups_and_every_image_once() -> None:
    members = [[0, 1, 2, 3], [4], [5, 6], [7, 8, 9], [10], [11, 12, 13, 14]]
    sampler = GroupBatchSampler(members, batch_size=5, seed=0)
    sampler.set_epoch(1)
    batches = list(sampler)
    seen = [index for batch in batches for index, _ in batch]
    assert sorted(seen) == list(range(15))
    group_of = {i: g for g, m in enumerate(members) for i in m}
    for batch in batches:
        assert len(batch) <= 5
        slots = {}
        for index, (epoch, _, slot) in batch:
            assert epoch == 1
            slots.setdefault(group_of[index], set()).add(slot)
        assert all(len(s) == 1 for s in slots.values())  # one slot per group
        assert len({next(iter(s)) for s in slots.values()}) == len(slots)  # distinct slots
        assert all(set(members[g]) <= {i for i, _ in batch} for g in slots)  # whole groups
    assert len(sampler) == len(batches)


def test_batches_are_seeded_and_change_with_the_epoch() -> None:
    members = [[i] for i in range(20)]
    a, b = GroupBatchSampler(members, 4, seed=0), GroupBatchSampler(members, 4, seed=0)
    assert a.batches(1) == b.batches(1)
    assert a.batches(1) != a.batches(2)
    assert a.batches(1) != GroupBatchSampler(members, 4, seed=1).batches(1)


def test_a_group_larger_than_a_batch_is_cut() -> None:
    sampler = GroupBatchSampler([list(range(7))], batch_size=3, seed=0)
    assert [len(b[0]) for b in sampler.batches(1)] == [3, 3, 1]


def test_steps_per_epoch_fixes_the_number_of_batches() -> None:
    members = [[i] for i in range(5)]
    sampler = GroupBatchSampler(members, 2, seed=0, steps_per_epoch=7)
    assert len(sampler.batches(1)) == 7  # more than one pass (3 batches a pass)
    assert len(GroupBatchSampler(members, 2, seed=0, steps_per_epoch=2).batches(1)) == 2


# --------------------------------------------------------------------------- crops


def test_half_of_the_crops_hold_a_target() -> None:
    mask = np.zeros((256, 256), np.uint8)
    mask[200, 30] = 255
    holds = []
    for i in range(400):
        view = draw_view(rng_for(0, "t", i), mask, 32)
        holds.append(view.top <= 200 < view.top + 32 and view.left <= 30 < view.left + 32)
    assert 0.42 < np.mean(holds) < 0.6  # 1/2 forced + ~1.6 % by chance


def test_crop_pads_a_small_image_and_keeps_image_and_mask_aligned() -> None:
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    view = View(top=0, left=0, crop=32, flip_v=False, flip_h=False, transpose=False)
    out = apply_view(image, view, fill=-1)
    assert out.shape == (32, 32)
    assert np.array_equal(out[:20, :30], image) and (out[20:] == -1).all() and (out[:, 30:] == -1).all()
    rng = np.random.default_rng(0)
    mask = (rng.random((50, 70)) > 0.9).astype(np.float32)
    for i in range(10):
        view = draw_view(rng_for(1, i), mask, 32)
        assert np.array_equal(apply_view(mask * 7, view), apply_view(mask, view) * 7)
        assert apply_view(mask, view).shape == (32, 32)


def test_flips_and_transpose() -> None:
    a = np.arange(4, dtype=np.float32).reshape(2, 2)
    view = View(0, 0, 2, flip_v=True, flip_h=False, transpose=True)
    assert apply_view(a, view).tolist() == [[2, 0], [3, 1]]


def test_pad_to_multiple() -> None:
    assert pad_to_multiple(np.ones((33, 64)), 32).shape == (64, 64)
    assert pad_to_multiple(np.ones((32, 64)), 32).shape == (32, 64)


def test_group_members_share_their_view(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image, mask = blob_scene(rng, (96, 96), 2)
    twin = image.copy()
    twin[:2, :2] = 0  # a different image with the same label
    root = write_dataset(tmp_path / "d", {"a": (image, mask), "b": (twin, mask)}, ["a", "b"], ["a"])
    crops = CropDataset(open_dataset(root), ["a", "b"], 80.0, 10.0, crop=32, seed=0)
    for batch in range(8):
        img_a, mask_a, _ = crops[(0, (1, batch, 0))]
        img_b, mask_b, _ = crops[(1, (1, batch, 0))]
        assert torch.equal(mask_a, mask_b)
        assert img_a.shape == (1, 32, 32) and set(mask_a.unique().tolist()) <= {0.0, 1.0}


# --------------------------------------------------------------------------- the loop


def test_overfits_a_handful_of_images(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 4, same_train_test=True)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), epochs=8, steps_per_epoch=10,
                         batch_size=4, width=8, crop=64, eval_every=8)
    summary = train(config, log=quiet)
    with open(tmp_path / "run" / "epochs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 8
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0] - 0.2
    assert summary["last"]["mIoU"] > 50
    assert summary["steps"] == 80 and summary["best"]["epoch"] == 8
    assert rows[3]["mIoU"] == "" and float(rows[7]["mIoU"]) == pytest.approx(summary["last"]["mIoU"])
    for name in ("last.pt", "best.pt", "metrics.json"):
        assert (tmp_path / "run" / name).is_file()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["state_dict"]


def test_same_seed_same_run_on_cpu(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 6)
    runs = [train(tiny_config(data, tmp_path / f"run{i}", seed=seed), log=quiet) for i, seed in enumerate((0, 0, 1))]
    a, b, c = (_weights(tmp_path / f"run{i}" / "last.pt") for i in range(3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0]["last"]["loss"] == runs[1]["last"]["loss"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_continues_where_the_run_stopped(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 6)
    full = train(tiny_config(data, tmp_path / "full", epochs=3), log=quiet)

    def stop_after_first_epoch(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data, tmp_path / "cut", epochs=3), log=stop_after_first_epoch)
    assert checkpoint.load(tmp_path / "cut" / "last.pt")["epoch"] == 1
    resumed = train(tiny_config(data, tmp_path / "cut", epochs=3), resume=True, log=quiet)
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["steps"] == full["steps"] == 6
    assert resumed["last"]["lr"] == full["last"]["lr"]
    with open(tmp_path / "cut" / "epochs.csv", newline="") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2", "3"]


def test_manifest_groups_reach_the_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = {id_: blob_scene(rng, (64, 64), 1) for id_ in ("a", "a_k1", "b", "b_k1", "t")}
    groups = {"a": "a", "a_k1": "a", "b": "b", "b_k1": "b"}
    data = write_dataset(tmp_path / "d", items, ["a", "a_k1", "b", "b_k1"], ["t"], groups=groups)
    lines: list[str] = []
    train(tiny_config(data, tmp_path / "run", neg_loss="min", epochs=1), log=lines.append)
    assert "4 training images in 2 groups" in lines[1]
    lines.clear()
    train(tiny_config(data, tmp_path / "plain", neg_loss="none", epochs=1), log=lines.append)
    assert "4 training images in 4 groups" in lines[1]


def test_sirst_style_list_names(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 4)
    (data / "50_50" / "train.txt").rename(data / "50_50" / "trainval.txt")
    lines: list[str] = []
    train(tiny_config(data, tmp_path / "run", epochs=1, train_list="trainval.txt"), log=lines.append)
    assert "2 training images" in lines[1]


# --------------------------------------------------------------------------- the command


def test_train_command_smoke(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 8)
    runner = CliRunner()
    result = runner.invoke(train_command, ["--data", str(data), "--smoke", "--crop", "32", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "parameters" in result.stdout and "epoch 1/1" in result.stdout
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["config"]["width"] == 8 and summary["config"]["crop"] == 32  # explicit option wins
    assert summary["parameters"] == 546_091

    again = runner.invoke(train_command, ["--data", str(data), "--smoke", "-o", str(tmp_path / "run")])
    assert again.exit_code == 1 and "--resume" in again.output
    changed = runner.invoke(train_command, ["--resume", "--lr", "0.1", "-o", str(tmp_path / "run")])
    assert changed.exit_code == 1 and "--lr 0.1 differs" in changed.output
    done = runner.invoke(train_command, ["--resume", "-o", str(tmp_path / "run")])
    assert done.exit_code == 0 and "all 1 epochs are done" in done.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "x"], "--data is required"),
        (["--data", "nowhere", "-o", "x"], "dataset folder not found"),
        (["--data", ".", "--crop", "50", "-o", "x"], "multiple of 16"),
        (["--resume", "-o", "nowhere"], "last.pt: checkpoint not found"),
    ],
)
def test_train_command_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_module_does_not_import_torch() -> None:
    code = "import sys, sirst_synth.cli.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
