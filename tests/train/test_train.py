"""The trainer: loss, group batching, crops, the loop (overfit, determinism, resume), the CLI."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sirst_synth.cli.train import train_command
from sirst_synth.errors import CheckpointError
from sirst_synth.plan.seeding import rng_for
from sirst_synth.store.reader import open_dataset
from sirst_synth.train import checkpoint
from sirst_synth.train.augment import View, apply_view, draw_view, pad_to_multiple, view_from_uniforms
from sirst_synth.train.data import CropDataset, DeviceData, Schedule, StreamData, batch_schedule, group_members, normalisation
from sirst_synth.train.loop import CSV_COLUMNS, ETA_MIN, TrainConfig, cosine_lr, total_steps, train
from sirst_synth.train.loss import group_soft_iou, soft_iou_per_sample, soft_iou_pooled

from train_fixtures import blob_dataset, blob_scene, write_dataset

torch.set_num_threads(1)  # tiny tensors: threads only add overhead (and stall on a busy machine)


def tiny_config(data: Path, out: Path, **kw: object) -> TrainConfig:
    options: dict[str, object] = {"data": str(data), "out": str(out), "steps": 4, "batch_size": 2, "width": 4,
                                  "crop": 32, "log_every": 2}
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
    # pooled: inter 0.5, union 4 + 1 - 0.5 = 4.5 -> 1 - 1.5 / 5.5
    assert soft_iou_pooled(logits, target).item() == pytest.approx(8 / 11)
    assert group_soft_iou(logits, target).item() == pytest.approx(8 / 11)  # the default: batch
    assert group_soft_iou(logits, target, iou="sample").item() == pytest.approx((4 / 7 + 2 / 3) / 2)


def test_soft_iou_of_a_confident_right_answer_is_near_zero() -> None:
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:4, 2:4] = 1
    assert soft_iou_per_sample((target * 2 - 1) * 50, target).item() < 1e-6


def _three_views() -> tuple[torch.Tensor, torch.Tensor]:
    """Views of 1 x 2 pixels, p = 0.5: view 0 and 2 hold one target pixel, view 1 none."""
    logits = torch.zeros(3, 1, 1, 2)
    target = torch.zeros(3, 1, 1, 2)
    target[0, 0, 0, 0] = target[2, 0, 0, 1] = 1
    return logits, target


def test_group_loss_by_hand() -> None:
    logits, target = _three_views()
    slots = torch.tensor([0, 0, 1])
    # per view: inter 0.5 / union 1.5 (with a target) -> 1 - 1.5/2.5 = 0.4; without: union 1 -> 1 - 1/2 = 0.5
    assert soft_iou_per_sample(logits, target).tolist() == pytest.approx([0.4, 0.5, 0.4])
    # sample + sum: group 0 pooled: inter 0.5, union 1.5 + 1 = 2.5 -> 1 - 1.5/3.5; group 1: 0.4
    assert group_soft_iou(logits, target, slots, "sample", "sum").item() == pytest.approx((4 / 7 + 0.4) / 2)
    # sample + min: group 0 -> 0.4 (view 0), group 1 -> 0.4
    assert group_soft_iou(logits, target, slots, "sample", "min").item() == pytest.approx(0.4)
    # batch + sum: everything pooled: inter 1, union 3 + 2 - 1 = 4 -> 1 - 2/5
    assert group_soft_iou(logits, target, slots, "batch", "sum").item() == pytest.approx(0.6)
    # batch + min: views 0 and 2 picked and pooled: inter 1, union 3 -> 1 - 2/4
    assert group_soft_iou(logits, target, slots, "batch", "min").item() == pytest.approx(0.5)
    # none ignores the groups: sample -> mean of the views
    assert group_soft_iou(logits, target, slots, "sample", "none").item() == pytest.approx(1.3 / 3)


def test_min_loss_trains_only_the_best_view_of_a_group() -> None:
    logits, target = _three_views()
    for iou in ("sample", "batch"):
        x = logits.clone().requires_grad_(True)
        group_soft_iou(x, target, torch.tensor([0, 0, 1]), iou, "min").backward()
        per_view = x.grad.abs().flatten(1).sum(1)
        assert per_view[1] == 0 and per_view[0] > 0 and per_view[2] > 0


def test_min_loss_picks_one_view_on_ties() -> None:
    logits = torch.zeros(2, 1, 2, 2, requires_grad=True)
    target = torch.zeros(2, 1, 2, 2)
    group_soft_iou(logits, target, torch.tensor([0, 0]), "sample", "min").backward()
    assert (logits.grad[0] != 0).all() and (logits.grad[1] == 0).all()


def test_without_groups_every_mode_is_the_same_loss() -> None:
    logits, target = torch.randn(4, 1, 8, 8), (torch.rand(4, 1, 8, 8) > 0.8).float()
    singletons = torch.arange(4)
    for iou in ("batch", "sample"):
        values = [group_soft_iou(logits, target, singletons, iou, mode).item() for mode in ("sum", "min", "none")]
        assert values == pytest.approx([values[0]] * 3)
    assert group_soft_iou(logits, target, None, "sample").item() == pytest.approx(
        soft_iou_per_sample(logits, target).mean().item())


def _gradient_ratio(iou: str) -> float:
    """|d loss / d logit| on target pixels over background pixels, all logits at -12."""
    logits = torch.full((2, 1, 32, 32), -12.0, requires_grad=True)
    target = torch.zeros(2, 1, 32, 32)
    target[0, 0, 10:13, 10:13] = 1  # the second crop holds no target
    group_soft_iou(logits, target, torch.arange(2), iou).backward()
    grad = logits.grad.abs()
    return (grad[target == 1].mean() / grad[target == 0].mean()).item()


def test_pooled_loss_pushes_target_pixels_up_from_an_all_negative_prediction() -> None:
    assert _gradient_ratio("batch") > 5  # target pixels: about (targets - 0) times the background's
    assert _gradient_ratio("sample") < 1  # the empty crop's background dominates: the collapse


def test_unknown_loss_modes_are_errors() -> None:
    with pytest.raises(ValueError, match="neg-loss"):
        group_soft_iou(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), neg_loss="max")
    with pytest.raises(ValueError, match="iou"):
        group_soft_iou(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), iou="pixel")


# --------------------------------------------------------------------------- the schedule


def test_group_members_from_the_manifest_groups() -> None:
    ids = ["a", "a_r0", "a_r0_t1_k1", "b", "b_r0"]
    groups = {"a": "a", "a_r0": "a_r0", "a_r0_t1_k1": "a_r0", "b_r0": "b_r0"}  # b is missing: own group
    assert group_members(ids, groups) == [[0], [1, 2], [3], [4]]
    assert group_members(ids, None) == [[0], [1], [2], [3], [4]]


def test_every_batch_is_full_and_holds_whole_groups() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 14, 300)  # SIRST-5K-like groups of 1 to 13 views
    members, n = [], 0
    for size in sizes.tolist():
        members.append(list(range(n, n + size)))
        n += size
    group_of = np.array([g for g, m in enumerate(members) for _ in m])
    index, slot = batch_schedule(members, 64, seed=0, steps=200)
    assert index.shape == slot.shape == (200, 64)
    cut = 0
    for step in range(200):
        groups = group_of[index[step]]
        for s in np.unique(slot[step]):
            in_slot = groups[slot[step] == s]
            assert (in_slot == in_slot[0]).all()  # one group per slot
            cut += len(in_slot) != len(members[in_slot[0]])
        assert len(set(index[step].tolist())) == 64  # no image twice in a batch
    assert cut <= 2  # whole groups, except a rare cut when nothing in the look-ahead fits
    counts = np.bincount(index[:100].ravel(), minlength=n)  # 6400 views over about 2 passes
    assert counts.max() - counts.min() <= 2


def test_schedule_is_seeded() -> None:
    members = [[i] for i in range(50)]
    a, b = batch_schedule(members, 8, 0, 20), batch_schedule(members, 8, 0, 20)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], batch_schedule(members, 8, 1, 20)[0])
    assert np.array_equal(batch_schedule(members, 8, 0, 5)[0], a[0][:5])  # a longer run extends a shorter one
    assert a[1].tolist() == [list(range(8))] * 20  # singletons: one slot each


def test_a_group_larger_than_a_batch_is_cut() -> None:
    index, _ = batch_schedule([list(range(7))], batch_size=3, seed=0, steps=3)
    assert index.tolist()[:2] == [[0, 1, 2], [3, 4, 5]] and index[2, 0] == 6


def test_steps_cover_the_epochs_and_the_cosine_matches_the_per_epoch_one() -> None:
    assert total_steps(TrainConfig(data="d", out="o", epochs=4, batch_size=256), 663) == 12
    assert total_steps(TrainConfig(data="d", out="o", epochs=4, steps_per_epoch=5), 663) == 20
    assert total_steps(TrainConfig(data="d", out="o", steps=7, epochs=4), 663) == 7
    opt = torch.optim.Adagrad([torch.zeros(1, requires_grad=True)], lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=ETA_MIN)
    for epoch in range(10):
        assert cosine_lr(epoch * 3, 30, 0.05) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()


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


def test_view_from_uniforms_matches_draw_view() -> None:
    mask = np.zeros((40, 50), np.uint8)
    mask[30:32, 5:7] = 255
    for i in range(20):
        u = rng_for(3, i).random(7)
        expected = draw_view(rng_for(3, i), mask, 32)
        assert view_from_uniforms(u, [(31, 6)], mask.shape, 32) == expected


def _mixed_dataset(root: Path) -> Path:
    """Images of three sizes (one smaller than the crop), one without a target, groups of 1-3."""
    rng = np.random.default_rng(1)
    items: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    groups: dict[str, str] = {}
    for name, shape, n_targets, views in [("g0", (48, 48), 2, 3), ("g1", (40, 56), 1, 2), ("s2", (24, 36), 1, 1),
                                          ("s3", (48, 48), 0, 1), ("s4", (40, 56), 2, 1)]:
        image, mask = blob_scene(rng, shape, n_targets)
        for v in range(views):  # the views of a group share the label (mask), images differ
            id_ = f"{name}_{v}"
            items[id_] = (np.roll(image, v, axis=1), mask)
            if views > 1:
                groups[id_] = name
    ids = list(items)
    return write_dataset(root, items, ids, ids[:2], groups=groups)


def test_device_batches_equal_a_per_image_reference(tmp_path: Path) -> None:
    ds = open_dataset(_mixed_dataset(tmp_path / "d"))
    ids = ds.ids("train")
    members = group_members(ids, ds.groups())
    schedule = Schedule(*batch_schedule(members, 4, seed=5, steps=12), seed=5)
    crop = 32
    data = DeviceData.load(ds, ids, crop, torch.device("cpu"))
    assert (data.mean, data.std) == pytest.approx(normalisation(ds, ids), rel=1e-12)
    reference = CropDataset(ds, ids, data.mean, data.std, crop)
    flips = set()
    for step, (image, mask, slot) in enumerate(data.batches(schedule, crop)):
        assert image.shape == mask.shape == (4, 1, crop, crop) and image.dtype == torch.float32
        assert slot.tolist() == schedule.slot[step].tolist()
        u = schedule.view_uniforms(step)
        for k, (index, s) in enumerate(zip(schedule.index[step], schedule.slot[step])):
            ref_image, ref_mask, ref_slot = reference[(int(index), int(s), u[k])]
            assert torch.equal(image[k], ref_image) and torch.equal(mask[k], ref_mask) and ref_slot == s
            flips.add(tuple((u[k, 4:] < 0.5).tolist()))
        group_of = np.array([g for g, m in enumerate(members) for _ in m])[schedule.index[step]]
        for s in set(slot.tolist()):  # a group's views share one crop: same mask
            same = (slot == s).nonzero().flatten().tolist()
            assert all(torch.equal(mask[same[0]], mask[j]) for j in same)
            assert len(set(group_of[same].tolist())) == 1
    assert len(flips) >= 6  # flips and transposes were exercised
    streamed = StreamData(ds, ids, data.mean, data.std, workers=0, device=torch.device("cpu"))
    for a, b in zip(data.batches(schedule, crop, start=7), streamed.batches(schedule, crop, start=7)):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_half_of_the_device_crops_hold_a_target(tmp_path: Path) -> None:
    image = np.full((256, 256), 80, np.uint8)
    mask = np.zeros((256, 256), np.uint8)
    mask[200, 30] = 255
    root = write_dataset(tmp_path / "d", {"a": (image, mask)}, ["a"], ["a"])
    data = DeviceData.load(open_dataset(root), ["a"], 32, torch.device("cpu"))
    schedule = Schedule(*batch_schedule([[0]], 1, seed=0, steps=400), seed=0)
    holds = [m.sum().item() == 1 for _, m, _ in data.batches(schedule, 32)]
    assert 0.42 < np.mean(holds) < 0.6  # 1/2 forced + ~1.6 % by chance


# --------------------------------------------------------------------------- the loop


@pytest.mark.slow  # trains until it overfits
def test_overfits_a_handful_of_images(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 4, same_train_test=True)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), steps=80, log_every=10,
                         batch_size=4, width=8, crop=64)
    summary = train(config, log=quiet)
    with open(tmp_path / "run" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 8
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0] - 0.2
    assert summary["last"]["mIoU"] > 50
    assert summary["steps"] == summary["step"] == 80 and summary["images_seen"] == 320
    assert summary["best"]["step"] == 80 and summary["done"]
    assert rows[3]["mIoU"] == "" and float(rows[7]["mIoU"]) == pytest.approx(summary["last"]["mIoU"])
    for name in ("last.pt", "best.pt", "metrics.json"):
        assert (tmp_path / "run" / name).is_file()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["state_dict"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_run_on_cpu_with_either_loader(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 6)
    runs = [train(tiny_config(data, tmp_path / f"run{i}", seed=seed, loader=loader), log=quiet)
            for i, (seed, loader) in enumerate([(0, "device"), (0, "stream"), (1, "device")])]
    a, b, c = (_weights(tmp_path / f"run{i}" / "last.pt") for i in range(3))
    assert _same(a, b) and runs[0]["loader"] == "device" and runs[1]["loader"] == "stream"
    assert runs[0]["last"]["mIoU"] == runs[1]["last"]["mIoU"]
    assert not _same(a, c)


def test_resume_continues_exactly_after_a_time_limit(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 6)
    full = train(tiny_config(data, tmp_path / "full", steps=6, iou="sample"), log=quiet)
    cut = train(tiny_config(data, tmp_path / "cut", steps=6, iou="sample", stop_after_min=0), log=quiet)
    assert cut["stopped"] == "--stop-after-min 0" and cut["step"] == 1 and not cut["done"]
    assert cut["last"]["step"] == 1 and cut["last"]["mIoU"] is not None  # a time-guard stop is scored
    assert checkpoint.load(tmp_path / "cut" / "last.pt")["step"] == 1
    resumed = train(tiny_config(data, tmp_path / "cut", steps=6, iou="sample"), resume=True, log=quiet)
    assert _same(_weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "cut" / "last.pt"))
    assert resumed["step"] == full["step"] == 6 and resumed["done"]
    with open(tmp_path / "cut" / "log.csv", newline="") as fh:
        assert [r["step"] for r in csv.DictReader(fh)] == ["1", "2", "4", "6"]


def test_sigterm_saves_and_stops_between_steps(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 6)

    def term_at_step_2(line: str) -> None:
        if line.startswith("step 2/"):
            os.kill(os.getpid(), signal.SIGTERM)

    summary = train(tiny_config(data, tmp_path / "run", steps=6, log_every=1), log=term_at_step_2)
    assert summary["stopped"] == "SIGTERM" and summary["step"] == 2
    assert checkpoint.load(tmp_path / "run" / "last.pt")["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again


def test_manifest_groups_reach_the_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = {id_: blob_scene(rng, (64, 64), 1) for id_ in ("a", "a_k1", "b", "b_k1", "t")}
    groups = {"a": "a", "a_k1": "a", "b": "b", "b_k1": "b"}
    data = write_dataset(tmp_path / "d", items, ["a", "a_k1", "b", "b_k1"], ["t"], groups=groups)
    lines: list[str] = []
    train(tiny_config(data, tmp_path / "run", neg_loss="min", steps=2), log=lines.append)
    assert "4 training images in 2 groups" in lines[1]
    lines.clear()
    train(tiny_config(data, tmp_path / "plain", neg_loss="none", steps=2), log=lines.append)
    assert "4 training images in 4 groups" in lines[1]


def test_sirst_style_list_names(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 4)
    (data / "50_50" / "train.txt").rename(data / "50_50" / "trainval.txt")
    lines: list[str] = []
    train(tiny_config(data, tmp_path / "run", steps=1, train_list="trainval.txt"), log=lines.append)
    assert "2 training images" in lines[1]


def test_a_set_too_large_for_the_device_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sirst_synth.train import loop

    monkeypatch.setattr(loop, "device_budget", lambda device: 1000)
    lines: list[str] = []
    summary = train(tiny_config(blob_dataset(tmp_path / "data", 4), tmp_path / "run", steps=1), log=lines.append)
    assert summary["loader"] == "stream"
    assert any("streaming it from disk" in line for line in lines)


# --------------------------------------------------------------------------- the command


def test_train_command_smoke(tmp_path: Path) -> None:
    data = blob_dataset(tmp_path / "data", 8)
    runner = CliRunner()
    result = runner.invoke(train_command, ["--data", str(data), "--smoke", "--crop", "32", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "parameters" in result.stdout and "step 20/20" in result.stdout
    assert "scores mean nothing" in result.stdout
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["config"]["width"] == 8 and summary["config"]["crop"] == 32  # explicit option wins
    assert summary["parameters"] == 546_091 and summary["smoke"] and summary["steps"] == 20
    assert summary["eval_images"] == 4  # at most 16

    again = runner.invoke(train_command, ["--data", str(data), "--smoke", "-o", str(tmp_path / "run")])
    assert again.exit_code == 1 and "--resume" in again.output
    changed = runner.invoke(train_command, ["--resume", "--lr", "0.1", "-o", str(tmp_path / "run")])
    assert changed.exit_code == 1 and "--lr 0.1 differs" in changed.output
    done = runner.invoke(train_command, ["--resume", "--log-every", "3", "-o", str(tmp_path / "run")])
    assert done.exit_code == 0 and "all 20 steps are done" in done.output


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


def test_a_checkpoint_of_another_version_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION + 1}, path)
    with pytest.raises(CheckpointError, match=f"checkpoint version {checkpoint.VERSION + 1}; this sirst-synth reads version"):
        checkpoint.load(path)
