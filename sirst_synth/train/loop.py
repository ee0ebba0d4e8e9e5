"""The training loop: Adagrad, cosine schedule per epoch, checkpoints, per-epoch CSV and metrics.

Writes into the run folder: ``last.pt`` (model + optimiser, scheduler, scaler, history: what
``--resume`` needs), ``best.pt`` (model of the best eval mIoU), ``epochs.csv`` (one row per
epoch) and ``metrics.json`` (best and last scores, run summary). All are rewritten atomically
at the end of every epoch, so an interrupted run loses at most the epoch in progress.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import torch

from sirst_synth.errors import TrainError
from sirst_synth.store.imageio import write_atomic
from sirst_synth.store.reader import open_dataset
from sirst_synth.train import checkpoint
from sirst_synth.train.data import CropDataset, GroupBatchSampler, group_members, normalisation
from sirst_synth.train.loss import group_loss, soft_iou_per_sample
from sirst_synth.train.metrics import METRIC_NAMES
from sirst_synth.train.model import DEFAULT_WIDTH, UNetAFF, count_parameters
from sirst_synth.train.predict import evaluate

#: CosineAnnealingLR's floor.
ETA_MIN = 1e-5
CSV_COLUMNS = ("epoch", "loss", "lr", *METRIC_NAMES, "seconds")
#: options a resumed run may change; every other one is the run's own.
RESUME_MAY_CHANGE = ("device", "workers", "eval_every")



@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (the ``train`` command's options)."""

    data: str
    out: str
    split: str | None = None  # None: 50_50 for a folder, the file's own split for an .h5 dataset
    train_list: str = "train.txt"
    test_list: str = "test.txt"
    eval_data: str | None = None
    epochs: int = 1500
    batch_size: int = 256
    lr: float = 0.05
    neg_loss: str = "sum"
    device: str = "auto"
    seed: int = 0
    width: int = DEFAULT_WIDTH
    crop: int = 256
    workers: int | None = None
    steps_per_epoch: int | None = None
    eval_every: int = 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_csv(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None or _json_value(row.get(k)) is None else row[k])
                         for k in CSV_COLUMNS})
    write_atomic(path, buf.getvalue().encode())


@contextmanager
def _progress(iterable: Any, length: int, label: str) -> Iterator[Any]:
    """A click progress bar on stderr when it is a terminal, else the iterable itself."""
    if sys.stderr.isatty():
        with click.progressbar(iterable, length=length, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield iterable


def _format_row(row: dict[str, Any], epochs: int) -> str:
    text = f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.4f}  lr {row['lr']:.2e}"
    if row.get("mIoU") is not None:
        text += "".join(f"  {name} {row[name]:.2f}" for name in METRIC_NAMES)
    return text + f"  {row['seconds']:.1f}s"


def prepare_output(out: Path, resume: bool) -> None:
    """Create the run folder; refuse a used one unless resuming (which needs its ``last.pt``)."""
    if resume:
        if not (out / "last.pt").is_file():
            raise TrainError(f"{out}: no last.pt to resume from")
        return
    if (out / "last.pt").exists():
        raise TrainError(f"{out} already holds a run; add --resume to continue it, or choose another -o")
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty; choose another -o")
    out.mkdir(parents=True, exist_ok=True)


def train_epoch(
    model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, device: torch.device, neg_loss: str,
) -> list[float]:
    """One pass over ``batches`` of (image, mask, group slot); returns the batch losses.

    On CUDA the forward pass runs in mixed precision (float16 autocast, loss scaling).
    """
    model.train()
    losses = []
    for image, mask, slot in batches:
        image, mask = image.to(device, non_blocking=True), mask.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, enabled=scaler.is_enabled()):
            logits = model(image)
        loss = group_loss(soft_iou_per_sample(logits, mask), slot.to(device), neg_loss)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    return losses


def resume_config(out: str | os.PathLike, given: dict[str, Any]) -> TrainConfig:
    """The config of the run in ``out`` (from its ``last.pt``), with the options in ``given``.

    Options in :data:`RESUME_MAY_CHANGE` may take new values; any other given option must equal
    the run's own (paths compared resolved), else :class:`TrainError`.
    """
    saved = checkpoint.load(Path(out) / "last.pt")["config"]
    merged = dict(saved)
    for name, value in given.items():
        if name in RESUME_MAY_CHANGE:
            merged[name] = value
        elif name != "out" and _canonical(name, value) != _canonical(name, saved.get(name)):
            flag = "--" + name.replace("_", "-")
            raise TrainError(f"{flag} {value} differs from the run's {saved.get(name)}; "
                             f"a resumed run keeps its options (only {', '.join(RESUME_MAY_CHANGE)} may change)")
    return TrainConfig(**{**merged, "out": str(out)})


def _canonical(name: str, value: Any) -> Any:
    if name in ("data", "eval_data") and value is not None:
        return os.path.realpath(value)
    return value


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = click.echo) -> dict[str, Any]:
    """Train (or resume) a run as ``config`` says; return the summary written to ``metrics.json``."""
    out = Path(config.out)
    prepare_output(out, resume)
    device = resolve_device(config.device)
    amp = device.type == "cuda"
    lists = (config.split, config.train_list, config.test_list)
    ds = open_dataset(config.data, *lists)
    eval_ds = open_dataset(config.eval_data, *lists) if config.eval_data else ds
    train_ids, eval_ids = ds.ids("train"), eval_ds.ids("test")
    if not train_ids:
        raise TrainError(f"{ds.split_file('train')}: no training id")
    members = group_members(train_ids, ds.groups() if config.neg_loss != "none" else None)

    torch.manual_seed(config.seed)
    model = UNetAFF(config.width).to(device)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=ETA_MIN)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    if resume:
        state = checkpoint.load(out / "last.pt", device)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and amp:  # empty when saved from a CPU run
            scaler.load_state_dict(state["scaler"])
        mean, std = state["normalisation"]["mean"], state["normalisation"]["std"]
        start, history, best, steps, seconds = (
            state["epoch"], list(state["history"]), state["best"], state["steps"], state["seconds"])
    else:
        mean, std = normalisation(ds, train_ids)
        start, history, best, steps, seconds = 0, [], None, 0, 0.0

    n_params = count_parameters(model)
    log(f"model: U-Net + AFF, width {config.width}, {n_params:,} parameters ({n_params / 1e6:.2f} M)")
    log(f"data: {len(train_ids)} training images in {len(members)} groups, {len(eval_ids)} eval images; "
        f"mean {mean:.2f} std {std:.2f}; device {device}" + (f"; resuming after epoch {start}" if resume else ""))

    sampler = GroupBatchSampler(members, config.batch_size, config.seed, config.steps_per_epoch)
    workers = config.workers if config.workers is not None else (min(8, os.cpu_count() or 1) if amp else 0)
    loader = torch.utils.data.DataLoader(
        CropDataset(ds, train_ids, mean, std, config.crop, config.seed), batch_sampler=sampler,
        num_workers=workers, pin_memory=amp, persistent_workers=workers > 0,
    )
    summary_path = out / "metrics.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if start and summary_path.exists() else {}
    if start >= config.epochs:
        log(f"{out}: all {config.epochs} epochs are done")
    for epoch in range(start + 1, config.epochs + 1):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        with _progress(loader, len(sampler), f"epoch {epoch}/{config.epochs}") as batches:
            losses = train_epoch(model, batches, optimizer, scaler, device, config.neg_loss)
        scheduler.step()
        steps += len(losses)
        row: dict[str, Any] = {"epoch": epoch, "loss": sum(losses) / len(losses), "lr": lr}
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            row.update({k: v for k, v in evaluate(model, eval_ds, eval_ids, mean, std, device).items()
                        if k in METRIC_NAMES})
        row["seconds"] = time.perf_counter() - t0
        seconds += row["seconds"]
        history.append(row)
        is_best = "mIoU" in row and (best is None or row["mIoU"] > best["mIoU"])
        if is_best:
            best = dict(row)
            checkpoint.save(out / "best.pt", {**checkpoint.model_state(model, mean, std), "epoch": epoch})
        checkpoint.save(out / "last.pt", {
            **checkpoint.model_state(model, mean, std), "epoch": epoch, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "history": history,
            "best": best, "steps": steps, "seconds": seconds, "config": asdict(config),
        })
        summary = {
            "epochs_done": epoch, "steps": steps, "seconds": round(seconds, 3), "parameters": n_params,
            "device": str(device), "normalisation": {"mean": mean, "std": std},
            "best": {k: _json_value(v) for k, v in best.items()} if best else None,
            "last": {k: _json_value(v) for k, v in row.items()}, "config": asdict(config),
        }
        write_atomic(summary_path, (json.dumps(summary, indent=2) + "\n").encode())
        _write_csv(out / "epochs.csv", history)
        log(_format_row(row, config.epochs) + ("  *best" if is_best else ""))
    return summary
