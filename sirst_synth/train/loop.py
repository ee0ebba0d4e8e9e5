"""The training loop: a step-based run of Adagrad with a cosine schedule, checkpoints, logs, scores.

A run is ``steps`` optimiser steps (``--steps``, or ``--epochs`` x ``--steps-per-epoch``, one
pass over the training set per epoch by default), all drawn up front (:mod:`sirst_synth.train.data`).
The learning rate follows a cosine from ``lr`` to :data:`ETA_MIN` over the steps; at the end of
epoch e it equals the per-epoch schedule's value. The loss is summed on the device and read
every ``log_every`` steps: one host sync per log line, none per step.

Writes into the run folder: ``last.pt`` (model + optimiser, scaler, history: what ``--resume``
needs) at the end, every ``save_every_min`` minutes and when stopped (SIGINT, SIGTERM,
``--stop-after-min``); ``best.pt`` (model of the best eval mIoU); ``log.csv`` (one row per log
line or evaluation) and ``metrics.json`` (scores and run summary). All are written atomically.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import click
import torch

from sirst_synth.errors import TrainError
from sirst_synth.store.imageio import write_atomic
from sirst_synth.store.reader import open_dataset
from sirst_synth.train import checkpoint
from sirst_synth.train.config import RESUME_MAY_CHANGE, TrainConfig
from sirst_synth.train.data import DeviceData, Schedule, StreamData, batch_schedule, device_budget, group_members, normalisation, read_pair
from sirst_synth.train.loss import group_soft_iou
from sirst_synth.train.metrics import METRIC_NAMES
from sirst_synth.train.model import UNetAFF, count_parameters
from sirst_synth.train.precision import Precision, resolve_precision
from sirst_synth.train.predict import evaluate

#: the cosine schedule's floor.
ETA_MIN = 1e-5
CSV_COLUMNS = ("step", "loss", "lr", *METRIC_NAMES, "eval_images", "images_per_s", "seconds")
#: steps before the steady-state step time is measured (cuDNN autotuning, torch.compile).
WARMUP_STEPS = 5
#: eval batch size on CUDA (CPU: 8).
CUDA_EVAL_BATCH = 32


def total_steps(config: TrainConfig, n_train: int) -> int:
    """The run's optimiser steps: ``steps``, else epochs x steps per epoch (default one pass)."""
    if config.steps is not None:
        return config.steps
    return config.epochs * (config.steps_per_epoch or math.ceil(n_train / config.batch_size))


def cosine_lr(step: int, total: int, lr: float, eta_min: float = ETA_MIN) -> float:
    """Learning rate of 0-based ``step`` of ``total``: cosine from ``lr`` (step 0) towards ``eta_min``."""
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * step / total)) / 2


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available")
    return torch.device(name)


def curve_subset(ids: list[str], n: int | None) -> list[str]:
    """``n`` ids spread evenly over ``ids`` (first and last included); all of them when ``n`` is None or larger."""
    if n is None or n >= len(ids):
        return list(ids)
    if n == 1:
        return [ids[0]]
    return [ids[round(i * (len(ids) - 1) / (n - 1))] for i in range(n)]


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_csv(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: "" if _json_value(row.get(k)) is None else row[k] for k in CSV_COLUMNS})
    write_atomic(path, buf.getvalue().encode())


@contextmanager
def _progress(iterable: Any, length: int, label: str) -> Iterator[Any]:
    """A click progress bar on stderr when it is a terminal, else the iterable itself."""
    if sys.stderr.isatty():
        with click.progressbar(iterable, length=length, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield iterable


class _StopFlag:
    """SIGINT and SIGTERM set a flag the loop checks between steps (then saves and stops)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


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


def resume_config(out: str | os.PathLike, given: dict[str, Any]) -> TrainConfig:
    """The config of the run in ``out`` (from its ``last.pt``), with the options in ``given``.

    Options in :data:`RESUME_MAY_CHANGE` may take new values; any other given option must equal
    the run's own (paths compared resolved), else :class:`TrainError`.
    """
    state = checkpoint.load(Path(out) / "last.pt")
    if "step" not in state:
        raise TrainError(f"{Path(out) / 'last.pt'}: written by an older, epoch-based trainer; it cannot be resumed")
    saved = state["config"]
    merged = {**saved, "stop_after_min": None}  # a limit of the command that was stopped, not of the run
    for name, value in given.items():
        if name in RESUME_MAY_CHANGE:
            merged[name] = value
        elif name not in ("out", "smoke") and _canonical(name, value) != _canonical(name, saved.get(name)):
            flag = "--" + name.replace("_", "-")
            raise TrainError(f"{flag} {value} differs from the run's {saved.get(name)}; "
                             f"a resumed run keeps its options (only {', '.join(RESUME_MAY_CHANGE)} may change)")
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{**{k: v for k, v in merged.items() if k in known}, "out": str(out)})


def _canonical(name: str, value: Any) -> Any:
    if name in ("data", "eval_data") and value is not None:
        return os.path.realpath(value)
    return value


def _load_data(
    config: TrainConfig, ds: Any, ids: list[str], device: torch.device, log: Callable[[str], None],
) -> tuple[DeviceData | StreamData, str]:
    """The training set, resident on ``device`` when it fits (or ``--loader`` says), else streamed."""
    loader = config.loader
    if loader == "auto":
        first, _ = read_pair(ds, ids[0])
        need = DeviceData.nbytes(len(ids), first.shape, config.crop)
        budget = device_budget(device)
        if need > budget:
            log(f"data: the training set needs about {need / 2**30:.1f} GiB, more than the "
                f"{budget / 2**30:.1f} GiB it may take on {device}: streaming it from disk instead "
                f"(a DataLoader; slower)")
            loader = "stream"
        else:
            loader = "device"
    if loader == "device":
        return DeviceData.load(ds, ids, config.crop, device), "device"
    workers = config.workers if config.workers is not None else (min(8, os.cpu_count() or 1)
                                                                 if device.type == "cuda" else 0)
    mean, std = normalisation(ds, ids)
    return StreamData(ds, ids, mean, std, workers, device), "stream"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = click.echo) -> dict[str, Any]:
    """Train (or resume) a run as ``config`` says; return the summary written to ``metrics.json``."""
    out = Path(config.out)
    prepare_output(out, resume)
    device = resolve_device(config.device)
    lists = (config.split, config.train_list, config.test_list)
    ds = open_dataset(config.data, *lists)
    eval_ds = open_dataset(config.eval_data, *lists) if config.eval_data else ds
    train_ids, eval_ids = ds.ids("train"), eval_ds.ids("test")
    if not train_ids:
        raise TrainError(f"{ds.split_file('train')}: no training id")
    if config.eval_images is not None:
        eval_ids = eval_ids[:config.eval_images]
    members = group_members(train_ids, ds.groups() if config.neg_loss != "none" else None)
    total = total_steps(config, len(train_ids))
    schedule = Schedule(*batch_schedule(members, config.batch_size, config.seed, total), config.seed)

    curve_ids = curve_subset(eval_ids, config.curve_images)
    cuda = device.type == "cuda"
    numerics = Precision(resolve_precision(config.precision, device), device)
    precision = numerics.describe()
    torch.manual_seed(config.seed)
    model = numerics.prepare(UNetAFF(config.width).to(device))
    if cuda:
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=numerics.loss_scaling)
    state: dict[str, Any] = {}
    if resume:
        state = checkpoint.load(out / "last.pt", device)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
    start, history, best = state.get("step", 0), list(state.get("history", [])), state.get("best")
    seconds, eval_seconds = state.get("seconds", 0.0), state.get("eval_seconds", 0.0)

    n_params = count_parameters(model)
    log(f"model: U-Net + AFF, width {config.width}, {n_params:,} parameters ({n_params / 1e6:.2f} M)")
    if start >= total and (out / "metrics.json").is_file():
        log(f"{out}: all {total} steps are done")
        return json.loads((out / "metrics.json").read_text())
    t_load = time.perf_counter()
    data, loader = _load_data(config, ds, train_ids, device, log)
    if resume:  # the run's own statistics
        data.mean, data.std = state["normalisation"]["mean"], state["normalisation"]["std"]
    mean, std = data.mean, data.std
    load_seconds = time.perf_counter() - t_load
    log(f"data: {len(train_ids)} training images in {len(members)} groups, {len(eval_ids)} eval images; "
        f"mean {mean:.2f} std {std:.2f}; {loader} loader on {device} ({load_seconds:.1f} s); {precision}")
    log(f"schedule: {total} steps of {config.batch_size} images (loss: --iou {config.iou}, "
        f"--neg-loss {config.neg_loss})" + (f"; resuming after step {start}" if resume else ""))
    if config.smoke:
        log(f"smoke run: {total} steps, scored on {len(eval_ids)} test images; "
            "it checks that training runs, its scores mean nothing")

    net: Any = model
    use_compile = cuda if config.compile is None else config.compile
    if use_compile:
        net = torch.compile(model)

    def save_last(step: int) -> None:
        checkpoint.save(out / "last.pt", {
            **checkpoint.model_state(model, mean, std), "step": step, "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "history": history, "best": best,
            "seconds": seconds, "eval_seconds": eval_seconds, "config": asdict(config),
        })

    def summary(step: int, stopped: str | None = None) -> dict[str, Any]:
        last_eval = next((row for row in reversed(history) if row.get("mIoU") is not None), None)
        result = {
            "done": step >= total, "step": step, "steps": total, "batch_size": config.batch_size,
            "images_seen": step * config.batch_size, "train_images": len(train_ids), "groups": len(members),
            "eval_images": len(eval_ids), "seconds": round(seconds, 3), "eval_seconds": round(eval_seconds, 3),
            "load_seconds": round(load_seconds, 3), "seconds_per_step": timing.get("seconds_per_step"),
            "warmup_steps": WARMUP_STEPS,
            "parameters": n_params, "device": str(device), "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
            "precision": precision, "precision_name": numerics.name, "loader": loader, "compiled": bool(use_compile),
            "normalisation": {"mean": mean, "std": std},
            "best": {k: _json_value(v) for k, v in best.items()} if best else None,
            "last": {k: _json_value(v) for k, v in last_eval.items()} if last_eval else None,
            "smoke": config.smoke, "stopped": stopped, "config": asdict(config),
        }
        write_atomic(out / "metrics.json", (json.dumps(result, indent=2) + "\n").encode())
        _write_csv(out / "log.csv", history)
        return result

    def score(step: int, row: dict[str, Any], ids: list[str]) -> None:
        nonlocal best, eval_seconds
        t = time.perf_counter()
        batch = CUDA_EVAL_BATCH if cuda else 8
        scores = evaluate(model, eval_ds, ids, mean, std, device, batch, precision=numerics)
        row.update({k: v for k, v in scores.items() if k in METRIC_NAMES}, eval_images=len(ids))
        eval_seconds += time.perf_counter() - t
        if best is None or row["mIoU"] > best["mIoU"]:
            best = {"step": step, **{k: row[k] for k in METRIC_NAMES}}
            checkpoint.save(out / "best.pt", {**checkpoint.model_state(model, mean, std), "step": step})

    timing: dict[str, float] = {}
    model.train()
    loss_sum = torch.zeros((), device=device)
    t_log = t_save = t_begin = time.perf_counter()
    seconds_at_start, eval_at_start, step_of_log, stopped = seconds, eval_seconds, start, None

    def train_seconds(now: float) -> float:
        """Training time of the run so far: this invocation's wall time less its scoring."""
        return seconds_at_start + (now - t_begin) - (eval_seconds - eval_at_start)

    deadline = t_begin + config.stop_after_min * 60 if config.stop_after_min is not None else None
    step, result = start, None
    with _StopFlag() as flag, _progress(data.batches(schedule, config.crop, start), total - start,
                                        "training") as batches:
        for image, mask, slot in batches:
            lr = cosine_lr(step, total, config.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if cuda:
                image = image.contiguous(memory_format=torch.channels_last)
            with numerics.autocast():
                logits = net(image)
            loss = group_soft_iou(logits, mask, slot, config.iou, config.neg_loss)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach()
            step += 1
            now = time.perf_counter()
            if step - start == WARMUP_STEPS:
                _sync(device)
                timing["warm"], timing["warm_step"], timing["warm_eval"] = time.perf_counter(), step, eval_seconds
            row: dict[str, Any] = {}
            if step % config.log_every == 0 or step == total:
                n = step - step_of_log
                row.update(loss=loss_sum.item() / n, lr=lr, images_per_s=n * config.batch_size / (now - t_log))
                loss_sum.zero_()
                t_log, step_of_log = time.perf_counter(), step
            if deadline is not None and now > deadline and step < total:
                stopped = f"--stop-after-min {config.stop_after_min:g}"
            if step == total or stopped:  # a time-guard stop is scored too, on every eval image
                score(step, row, eval_ids)
            elif config.eval_every and step % config.eval_every == 0:
                score(step, row, curve_ids)
            if row:
                seconds = train_seconds(time.perf_counter())
                history.append({"step": step, **row, "seconds": round(seconds, 3)})
                log(_format_row(history[-1], total))
            if flag.signal is not None:
                stopped = signal.Signals(flag.signal).name
            if stopped or step == total or now - t_save > config.save_every_min * 60:
                _sync(device)
                seconds = train_seconds(time.perf_counter())
                if "warm" in timing and step > timing["warm_step"]:
                    busy = time.perf_counter() - timing["warm"] - (eval_seconds - timing["warm_eval"])
                    timing["seconds_per_step"] = round(busy / (step - timing["warm_step"]), 5)
                save_last(step)
                result = summary(step, stopped)
                t_save = time.perf_counter()
            if stopped:
                break
    if result is None:  # nothing left to run (a last.pt of the final step without its metrics.json)
        result = summary(step)
    if stopped:
        log(f"stopped after step {step}/{total} ({stopped}); last.pt saved: continue with --resume")
    elif config.smoke:
        log("smoke run done: the scores above mean nothing (a few steps of a tiny model)")
    return result


def _format_row(row: dict[str, Any], total: int) -> str:
    text = f"step {row['step']}/{total}"
    if row.get("loss") is not None:
        text += f"  loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['images_per_s']:.1f} img/s"
    if row.get("mIoU") is not None:
        text += "".join(f"  {name} {row[name]:.2f}" for name in METRIC_NAMES)
    return text + f"  {row['seconds']:.1f}s"
