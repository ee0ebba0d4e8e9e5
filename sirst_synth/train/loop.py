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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from sirst_synth.errors import TrainError
from sirst_synth.progress import Progress, silent
from sirst_synth.store.imageio import write_atomic
from sirst_synth.store.reader import open_dataset
from sirst_synth.train import checkpoint
from sirst_synth.train.config import RESUME_MAY_CHANGE, TrainConfig
from sirst_synth.train.data import DeviceData, Schedule, StreamData, batch_schedule, device_budget, group_members, normalisation, read_pair
from sirst_synth.train.loss import group_soft_iou
from sirst_synth.train.metrics import METRIC_NAMES
from sirst_synth.train.model import UNetAFF, count_parameters
from sirst_synth.train.online import OnlineData, OnlineSetup
from sirst_synth.train.precision import Precision, resolve_precision
from sirst_synth.train.predict import evaluate
from sirst_synth.train.threads import apply_threads

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
        raise TrainError(f"{Path(out) / 'last.pt'}: a model checkpoint (best.pt), not a run's last.pt; it cannot be resumed")
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
    if name in ("data", "eval_data", "noise") and value is not None:
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


@dataclass
class _Clock:
    """The run's time: training seconds (scoring left out), scoring seconds, the warm step time."""

    seconds: float = 0.0
    eval_seconds: float = 0.0
    seconds_per_step: float | None = None
    begin: float = field(default_factory=time.perf_counter)
    seconds_at_start: float = 0.0
    eval_at_start: float = 0.0
    warm: tuple[float, int, float] | None = None  # (time, step, eval seconds) once warm

    def resume(self, seconds: float, eval_seconds: float) -> None:
        self.seconds = self.seconds_at_start = seconds
        self.eval_seconds = self.eval_at_start = eval_seconds

    def train_seconds(self, now: float) -> float:
        """Training time of the run so far: this invocation's wall time less its scoring."""
        return self.seconds_at_start + (now - self.begin) - (self.eval_seconds - self.eval_at_start)

    def mark_warm(self, step: int) -> None:
        self.warm = (time.perf_counter(), step, self.eval_seconds)

    def update(self, step: int) -> None:
        """Training seconds now, and the steady step time once past the warm-up."""
        now = time.perf_counter()
        self.seconds = self.train_seconds(now)
        if self.warm is not None and step > self.warm[1]:
            busy = now - self.warm[0] - (self.eval_seconds - self.warm[2])
            self.seconds_per_step = round(busy / (step - self.warm[1]), 5)


class TrainingRun:
    """One run of ``train``: its data, model, optimiser and history, and the steps that change them."""

    def __init__(self, config: TrainConfig, resume: bool, log: Callable[[str], None],
                 progress: Progress = silent) -> None:
        self.config, self.resume, self.log, self.progress = config, resume, log, progress
        self.out = Path(config.out)
        prepare_output(self.out, resume)
        self.device = resolve_device(config.device)
        self.threads = apply_threads(config.threads)
        lists = (config.split, config.train_list, config.test_list)
        self.ds = open_dataset(config.data, *lists)
        self.eval_ds = open_dataset(config.eval_data, *lists) if config.eval_data else self.ds
        self.train_ids, eval_ids = self.ds.ids("train"), self.eval_ds.ids("test")
        if not self.train_ids:
            raise TrainError(f"{self.ds.split_file('train')}: no training id")
        self.eval_ids = eval_ids[:config.eval_images] if config.eval_images is not None else eval_ids
        self.curve_ids = curve_subset(self.eval_ids, config.curve_images)
        self.online = OnlineSetup.prepare(config, self.ds, self.eval_ds, self.train_ids, log)  # --synth online
        self.members = (self.online.plan.members if self.online else
                        group_members(self.train_ids, self.ds.groups() if config.neg_loss != "none" else None))
        self.total = total_steps(config, self.online.plan.size if self.online else len(self.train_ids))
        self.schedule = Schedule(*batch_schedule(self.members, config.batch_size, config.seed, self.total), config.seed)
        self._build_model()
        state = checkpoint.load(self.out / "last.pt", self.device) if resume else {}
        if state:
            self.model.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["scaler"])
        # what the run keeps of its last.pt (the weights and optimiser state are loaded above; the
        # checkpoint's own tensors are not held on to)
        self.resumed: dict[str, Any] = {k: state[k] for k in ("normalisation", "seconds", "eval_seconds")
                                        if k in state}
        self.start: int = state.get("step", 0)
        self.history: list[dict[str, Any]] = list(state.get("history", []))
        self.best: dict[str, Any] | None = state.get("best")

    def _build_model(self) -> None:
        config, device = self.config, self.device
        self.cuda = device.type == "cuda"
        self.numerics = Precision(resolve_precision(config.precision, device), device)
        torch.manual_seed(config.seed)
        model = self.numerics.prepare(UNetAFF(config.width).to(device))
        if self.cuda:
            torch.backends.cudnn.benchmark = True
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model: UNetAFF = model
        self.optimizer = torch.optim.Adagrad(model.parameters(), lr=config.lr)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.numerics.loss_scaling)
        self.use_compile = self.cuda if config.compile is None else config.compile
        self.net: Any = torch.compile(model) if self.use_compile else model
        self.n_params = count_parameters(model)

    def load_data(self) -> None:
        """The training set on the device (or streamed), and the run's normalisation."""
        t = time.perf_counter()
        self.data: DeviceData | StreamData | OnlineData
        if self.online is not None:
            self.data, self.loader = self.online.load(self.config, self.ds, self.train_ids, self.device), "online"
        else:
            self.data, self.loader = _load_data(self.config, self.ds, self.train_ids, self.device, self.log)
        if "normalisation" in self.resumed:  # the run's own statistics
            self.data.mean, self.data.std = self.resumed["normalisation"]["mean"], self.resumed["normalisation"]["std"]
        self.mean, self.std = self.data.mean, self.data.std
        self.load_seconds = time.perf_counter() - t

    def save_last(self, step: int) -> None:
        """``last.pt``: everything ``--resume`` needs."""
        checkpoint.save(self.out / "last.pt", {
            **checkpoint.model_state(self.model, self.mean, self.std), "step": step,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {}, "history": self.history,
            "best": self.best, "seconds": self.clock.seconds, "eval_seconds": self.clock.eval_seconds,
            "config": asdict(self.config),
        })

    def summary(self, step: int, stopped: str | None = None) -> dict[str, Any]:
        """Write ``metrics.json`` and ``log.csv``; return the summary."""
        config, clock = self.config, self.clock
        last_eval = next((row for row in reversed(self.history) if row.get("mIoU") is not None), None)
        result = {
            "done": step >= self.total, "step": step, "steps": self.total, "batch_size": config.batch_size,
            "images_seen": step * config.batch_size, "train_images": len(self.train_ids),
            "groups": len(self.members), "eval_images": len(self.eval_ids), "seconds": round(clock.seconds, 3),
            "eval_seconds": round(clock.eval_seconds, 3), "load_seconds": round(self.load_seconds, 3),
            "seconds_per_step": clock.seconds_per_step, "warmup_steps": WARMUP_STEPS,
            "parameters": self.n_params, "device": str(self.device), "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name(self.device) if self.cuda else "cpu",
            "precision": self.numerics.describe(), "precision_name": self.numerics.name, "loader": self.loader,
            "compiled": bool(self.use_compile), "normalisation": {"mean": self.mean, "std": self.std},
            "best": {k: _json_value(v) for k, v in self.best.items()} if self.best else None,
            "last": {k: _json_value(v) for k, v in last_eval.items()} if last_eval else None,
            "smoke": config.smoke, "stopped": stopped, "config": asdict(config),
        }
        write_atomic(self.out / "metrics.json", (json.dumps(result, indent=2) + "\n").encode())
        _write_csv(self.out / "log.csv", self.history)
        return result

    def score(self, step: int, row: dict[str, Any], ids: list[str]) -> None:
        """Score ``ids`` into ``row``; keep ``best.pt`` when the mIoU is the best so far."""
        t = time.perf_counter()
        batch = CUDA_EVAL_BATCH if self.cuda else 8
        scores = evaluate(self.model, self.eval_ds, ids, self.mean, self.std, self.device, batch,
                          precision=self.numerics)
        row.update({k: v for k, v in scores.items() if k in METRIC_NAMES}, eval_images=len(ids))
        self.clock.eval_seconds += time.perf_counter() - t
        if self.best is None or row["mIoU"] > self.best["mIoU"]:
            self.best = {"step": step, **{k: row[k] for k in METRIC_NAMES}}
            checkpoint.save(self.out / "best.pt", {**checkpoint.model_state(self.model, self.mean, self.std),
                                                   "step": step})

    def optimise(self, step: int, image: torch.Tensor, mask: torch.Tensor, slot: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One optimiser step at 0-based ``step``; return its loss (on the device) and learning rate."""
        lr = cosine_lr(step, self.total, self.config.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.cuda:
            image = image.contiguous(memory_format=torch.channels_last)
        with self.numerics.autocast():
            logits = self.net(image)
        loss = group_soft_iou(logits, mask, slot, self.config.iou, self.config.neg_loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), lr

    def log_start(self) -> None:
        config = self.config
        self.log(f"data: {len(self.train_ids)} training images in {len(self.members)} groups, "
                 f"{len(self.eval_ids)} eval images; mean {self.mean:.2f} std {self.std:.2f}; {self.loader} loader "
                 f"on {self.device} ({self.load_seconds:.1f} s); {self.numerics.describe()}; {self.threads}")
        self.log(f"schedule: {self.total} steps of {config.batch_size} images (loss: --iou {config.iou}, "
                 f"--neg-loss {config.neg_loss})" + (f"; resuming after step {self.start}" if self.resume else ""))
        if config.smoke:
            self.log(f"smoke run: {self.total} steps, scored on {len(self.eval_ids)} test images; "
                     "it checks that training runs, its scores mean nothing")

    def execute(self) -> dict[str, Any]:
        """Run the steps left; return the summary written to ``metrics.json``."""
        self.log(f"model: U-Net + AFF, width {self.config.width}, {self.n_params:,} parameters "
                 f"({self.n_params / 1e6:.2f} M)")
        if self.start >= self.total and (self.out / "metrics.json").is_file():
            self.log(f"{self.out}: all {self.total} steps are done")
            return dict(json.loads((self.out / "metrics.json").read_text()))
        self.load_data()
        self.log_start()
        self.clock = _Clock()
        self.clock.resume(self.resumed.get("seconds", 0.0), self.resumed.get("eval_seconds", 0.0))
        step, stopped, result = self._steps()
        if result is None:  # nothing left to run (a last.pt of the final step without its metrics.json)
            result = self.summary(step)
        if stopped:
            self.log(f"stopped after step {step}/{self.total} ({stopped}); last.pt saved: continue with --resume")
        elif self.config.smoke:
            self.log("smoke run done: the scores above mean nothing (a few steps of a tiny model)")
        return result

    def _steps(self) -> tuple[int, str | None, dict[str, Any] | None]:
        config, clock, total = self.config, self.clock, self.total
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        t_log = t_save = clock.begin
        step = step_of_log = self.start
        stopped: str | None = None
        result = None
        deadline = clock.begin + config.stop_after_min * 60 if config.stop_after_min is not None else None
        with _StopFlag() as flag, self.progress("training", total - self.start) as bar:
            for image, mask, slot in self.data.batches(self.schedule, config.crop, self.start):
                loss, lr = self.optimise(step, image, mask, slot)
                bar.update(1)
                loss_sum += loss
                step += 1
                now = time.perf_counter()
                if step - self.start == WARMUP_STEPS:
                    _sync(self.device)
                    clock.mark_warm(step)
                row: dict[str, Any] = {}
                if step % config.log_every == 0 or step == total:
                    n = step - step_of_log
                    row.update(loss=loss_sum.item() / n, lr=lr, images_per_s=n * config.batch_size / (now - t_log))
                    loss_sum.zero_()
                    t_log, step_of_log = time.perf_counter(), step
                if deadline is not None and now > deadline and step < total:
                    stopped = f"--stop-after-min {config.stop_after_min:g}"
                if step == total or stopped:  # a time-guard stop is scored too, on every eval image
                    self.score(step, row, self.eval_ids)
                elif config.eval_every and step % config.eval_every == 0:
                    self.score(step, row, self.curve_ids)
                if row:
                    clock.seconds = clock.train_seconds(time.perf_counter())
                    self.history.append({"step": step, **row, "seconds": round(clock.seconds, 3)})
                    self.log(_format_row(self.history[-1], total))
                if flag.signal is not None:
                    stopped = signal.Signals(flag.signal).name
                if stopped or step == total or now - t_save > config.save_every_min * 60:
                    _sync(self.device)
                    clock.update(step)
                    self.save_last(step)
                    result = self.summary(step, stopped)
                    t_save = time.perf_counter()
                if stopped:
                    break
        return step, stopped, result


def train(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print,
          progress: Progress = silent) -> dict[str, Any]:
    """Train (or resume) a run as ``config`` says, its lines to ``log`` and its steps to ``progress``;
    return the summary written to ``metrics.json``."""
    return TrainingRun(config, resume, log, progress).execute()


def _format_row(row: dict[str, Any], total: int) -> str:
    text = f"step {row['step']}/{total}"
    if row.get("loss") is not None:
        text += f"  loss {row['loss']:.4f}  lr {row['lr']:.2e}  {row['images_per_s']:.1f} img/s"
    if row.get("mIoU") is not None:
        text += "".join(f"  {name} {row[name]:.2f}" for name in METRIC_NAMES)
    return text + f"  {row['seconds']:.1f}s"
