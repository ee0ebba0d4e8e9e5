"""The trainer on CUDA (``pytest -m cuda``): skipped where no CUDA device is available.

The device-resident crops and the loss must agree with the CPU's, a training step must not
synchronise with the host, and a short run (bf16 or fp16, channels_last, torch.compile) must
train, score, save and resume.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sirst_synth.cli.train import eval_command, train_command
from sirst_synth.store.reader import open_dataset
from sirst_synth.train import checkpoint
from sirst_synth.train.data import DeviceData, Schedule, batch_schedule, group_members
from sirst_synth.train.loss import group_soft_iou
from sirst_synth.train.model import UNetAFF

from train_fixtures import blob_dataset, blob_scene, write_dataset

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")


def _grouped(root: Path) -> Path:
    rng = np.random.default_rng(0)
    items, groups = {}, {}
    for i in range(6):
        image, mask = blob_scene(rng, (64, 64), 1 + i % 2)
        for v in range(1 + i % 3):
            items[f"i{i}_{v}"] = (np.roll(image, v, axis=0), mask)
            groups[f"i{i}_{v}"] = f"i{i}"
    ids = list(items)
    return write_dataset(root, items, ids, ids[:4], groups=groups)


def test_cuda_crops_equal_cpu_crops(tmp_path: Path) -> None:
    ds = open_dataset(_grouped(tmp_path / "d"))
    ids = ds.ids("train")
    schedule = Schedule(*batch_schedule(group_members(ids, ds.groups()), 8, seed=3, steps=20), seed=3)
    cpu = DeviceData.load(ds, ids, 32, torch.device("cpu"))
    gpu = DeviceData.load(ds, ids, 32, CUDA)
    assert (gpu.mean, gpu.std) == pytest.approx((cpu.mean, cpu.std), rel=1e-12)
    for a, b in zip(cpu.batches(schedule, 32), gpu.batches(schedule, 32)):
        assert all(torch.equal(x, y.cpu()) for x, y in zip(a, b))


@pytest.mark.parametrize("iou, neg_loss", [("batch", "sum"), ("batch", "min"), ("sample", "sum"), ("sample", "min")])
def test_cuda_loss_equals_cpu_loss(iou: str, neg_loss: str) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 1, 16, 16, generator=gen)
    target = (torch.rand(12, 1, 16, 16, generator=gen) > 0.9).float()
    slots = torch.tensor([0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4, 5])
    cpu = group_soft_iou(logits, target, slots, iou, neg_loss)
    gpu = group_soft_iou(logits.to(CUDA), target.to(CUDA), slots.to(CUDA), iou, neg_loss)
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-5)


def test_a_training_step_does_not_sync_with_the_host(tmp_path: Path) -> None:
    ds = open_dataset(_grouped(tmp_path / "d"))
    ids = ds.ids("train")
    schedule = Schedule(*batch_schedule(group_members(ids, ds.groups()), 8, seed=0, steps=4), seed=0)
    data = DeviceData.load(ds, ids, 32, CUDA)
    index = torch.from_numpy(schedule.index).to(CUDA)
    slot = torch.from_numpy(schedule.slot).to(CUDA)
    u = torch.from_numpy(np.stack([schedule.view_uniforms(s) for s in range(4)])).to(CUDA)
    model = UNetAFF(8).to(CUDA).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.05)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    total = torch.zeros((), device=CUDA)

    def step(k: int) -> None:
        image, mask = data.crops(index[k], u[k], 32)
        with torch.autocast("cuda", dtype=dtype):
            logits = model(image.contiguous(memory_format=torch.channels_last))
        loss = group_soft_iou(logits, mask, slot[k], "batch", "min")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total.add_(loss.detach())

    step(0)  # first step: lazy initialisations may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for k in range(1, 4):
            step(k)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()


@pytest.mark.parametrize("compile_flag", ["--no-compile", "--compile"])
def test_train_resume_and_eval_on_cuda(tmp_path: Path, compile_flag: str) -> None:
    data = blob_dataset(tmp_path / "data", 8)
    run = tmp_path / "run"
    args = ["--data", str(data), "--device", "cuda", "--width", "8", "--crop", "32", "--batch-size", "4",
            "--steps", "12", "--log-every", "4", compile_flag, "-o", str(run)]
    cut = CliRunner().invoke(train_command, [*args, "--stop-after-min", "0"])
    assert cut.exit_code == 0, cut.output
    assert "continue with --resume" in cut.output
    done = CliRunner().invoke(train_command, ["--resume", "-o", str(run)])
    assert done.exit_code == 0, done.output
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["done"] and summary["step"] == 12 and summary["loader"] == "device"
    assert summary["precision"] in ("bf16", "fp16 + loss scaling") and summary["device_name"] != "cpu"
    assert summary["compiled"] == (compile_flag == "--compile")
    assert np.isfinite(summary["last"]["mIoU"])
    assert not any(k.startswith("_orig_mod.") for k in checkpoint.load(run / "last.pt")["state_dict"])
    scored = CliRunner().invoke(eval_command, ["--checkpoint", str(run / "last.pt"), "--data", str(data),
                                               "--device", "cuda", "--json"])
    assert scored.exit_code == 0, scored.output
    # the same model; eval batches of 8 instead of 32 may round bf16 sums differently near logit 0
    assert json.loads(scored.stdout)["mIoU"] == pytest.approx(summary["last"]["mIoU"], abs=2.0)
